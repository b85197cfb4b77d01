//! A stand-in for the AWS Price List API, which moto does not serve. It speaks the real
//! wire protocol: JSON 1.1 over POST, `X-Amz-Target: AWSPriceListService.GetProducts`,
//! an answer whose `PriceList` is an array of JSON documents serialised as strings. It
//! honours `ServiceCode`, every `TERM_MATCH` filter (on the product's attributes),
//! `MaxResults` and `NextToken`; without `MaxResults` it answers one product a page, so
//! a client that does not follow pages is caught. [`PriceListStandIn::endless`] gives a
//! new `NextToken` with every page, for ever, so a client that trusts it never ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::http::{Reply, Request, Response, Server};

pub struct PriceListStandIn {
    server: Server,
    requests: Arc<AtomicU64>,
}

/// A product document as the Price List gives it: on-demand terms with one hourly price.
pub fn ec2_product(sku: &str, attributes: &[(&str, &str)], hourly_usd: &str) -> Value {
    let mut attrs = serde_json::Map::new();
    attrs.insert("servicecode".into(), json!("AmazonEC2"));
    for (k, v) in attributes {
        attrs.insert((*k).into(), json!(v));
    }
    let offer = format!("{sku}.JRTCKXETXF");
    let rate = format!("{offer}.6YS6EN2CT7");
    json!({
        "product": {"productFamily": "Compute Instance", "attributes": attrs, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {offer.clone(): {
            "priceDimensions": {rate.clone(): {
                "unit": "Hrs", "endRange": "Inf", "description": "On Demand Linux",
                "appliesTo": [], "rateCode": rate, "beginRange": "0",
                "pricePerUnit": {"USD": hourly_usd}}},
            "sku": sku, "effectiveDate": "2024-03-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}}}},
        "version": "20240301000000",
        "publicationDate": "2024-03-01T00:00:00Z"
    })
}

/// An ordinary Linux, shared-tenancy, `Used` product of `instance_type` in `region`.
pub fn linux_product(sku: &str, instance_type: &str, region: &str, hourly_usd: &str) -> Value {
    ec2_product(
        sku,
        &[
            ("instanceType", instance_type),
            ("regionCode", region),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
            ("licenseModel", "No License required"),
        ],
        hourly_usd,
    )
}

fn error(status: u16, kind: &str, message: &str) -> Reply {
    let body = json!({"__type": kind, "Message": message}).to_string();
    Reply::Send(Response::new(status, body).header("Content-Type", "application/x-amz-json-1.1"))
}

fn get_products(products: &[Value], endless: bool, req: &Request) -> Reply {
    if req.method != "POST" || req.header("x-amz-target") != Some("AWSPriceListService.GetProducts") {
        return error(
            400,
            "UnknownOperationException",
            "only AWSPriceListService.GetProducts is served",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "SerializationException", "the body is not JSON");
    };
    if body["ServiceCode"].as_str() != Some("AmazonEC2") {
        return error(400, "InvalidParameterException", "ServiceCode must be AmazonEC2 here");
    }
    let filters: Vec<(&str, &str)> = body["Filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["Type"].as_str() == Some("TERM_MATCH"))
        .filter_map(|f| Some((f["Field"].as_str()?, f["Value"].as_str()?)))
        .collect();
    let matching: Vec<&Value> = products
        .iter()
        .filter(|p| {
            filters.iter().all(|(k, v)| {
                p["product"]["attributes"][*k]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(v))
            })
        })
        .collect();
    let page = body["MaxResults"].as_u64().unwrap_or(1).max(1) as usize;
    let start: usize = body["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let end = (start + page).min(matching.len());
    let list: Vec<String> = matching
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut answer = json!({"FormatVersion": "aws_v1", "PriceList": list});
    if end < matching.len() || endless {
        // Endless: past the products, empty pages whose token is always a new one.
        answer["NextToken"] = json!((start + page).to_string());
    }
    Reply::Send(Response::new(200, answer.to_string()).header("Content-Type", "application/x-amz-json-1.1"))
}

impl PriceListStandIn {
    /// Serves `products` on 127.0.0.1, on a free port.
    pub fn start(products: Vec<Value>) -> PriceListStandIn {
        PriceListStandIn::serve(products, false)
    }

    /// Serves `products`, then empty pages, each with a new `NextToken`, never a last one.
    pub fn endless(products: Vec<Value>) -> PriceListStandIn {
        PriceListStandIn::serve(products, true)
    }

    fn serve(products: Vec<Value>, endless: bool) -> PriceListStandIn {
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let products = Arc::new(products);
        let server = Server::start(
            "price-list",
            Arc::new(move |req: &Request| {
                counter.fetch_add(1, Ordering::SeqCst);
                get_products(&products, endless, req)
            }),
        )
        .expect("start the Price List stand-in");
        PriceListStandIn { server, requests }
    }

    /// For `AWS_ENDPOINT_URL_PRICING`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}
