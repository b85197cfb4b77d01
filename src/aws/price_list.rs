//! The AWS Price List API (`pricing:GetProducts`), for `cost-tags prices refresh`: the
//! on-demand Linux price of an instance type in a region. The API answers from
//! us-east-1 whatever region is priced; `AWS_ENDPOINT_URL_PRICING` points it elsewhere.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_pricing::types::{Filter, FilterType};
use serde_json::Value;

use super::sdk::{self, summary};

/// The region the Price List API is called in.
const HOME_REGION: &str = "us-east-1";

/// The product attributes that leave one on-demand Linux price per instance type and
/// region: no Windows or RHEL, no dedicated tenancy, no pre-installed SQL Server, and
/// `Used` capacity (not the reservation's unused or allocated capacity lines).
pub(crate) const FILTERS: [(&str, &str); 4] = [
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
];

/// The most GetProducts pages read for one instance type. With the filters of
/// [`FILTERS`] and the type and region named, AWS answers with one product (one page, two
/// when it ends a page with a token and then an empty page); 20 is ten times that, and at
/// the default page size of 100 products it is 2,000 products, far more than the product
/// lines of one type in one region. An endpoint that hands out a new `NextToken` for ever
/// (a broken proxy, a bug on AWS's side) would otherwise keep a oneshot timer running for
/// ever: 17,800 requests in 25 s, measured against such an endpoint.
pub(crate) const MAX_PAGES: u32 = 20;

pub(crate) struct PriceListApi {
    client: aws_sdk_pricing::Client,
}

impl PriceListApi {
    /// `budget` bounds each call, retries included.
    pub(crate) async fn connect(budget: Duration) -> PriceListApi {
        let config = sdk::load(HOME_REGION.to_string(), budget).await;
        PriceListApi {
            client: aws_sdk_pricing::Client::new(&config),
        }
    }

    /// The on-demand hourly price (USD) of `instance_type` in `region`, every page read, at
    /// most [`MAX_PAGES`] of them and none after `deadline` (the command's). `None` when the
    /// type is not sold there; an error when the filters leave more than one price, since
    /// picking one would be a guess, or when the pages do not end in time.
    pub(crate) async fn on_demand_hourly(
        &self,
        instance_type: &str,
        region: &str,
        deadline: Instant,
    ) -> Result<Option<f64>> {
        let term = |field: &str, value: &str| {
            Filter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .expect("type, field and value are set")
        };
        let mut request = self
            .client
            .get_products()
            .service_code("AmazonEC2")
            .format_version("aws_v1")
            .filters(term("instanceType", instance_type))
            .filters(term("regionCode", region));
        for (field, value) in FILTERS {
            request = request.filters(term(field, value));
        }
        let mut prices = Vec::new();
        let mut token: Option<String> = None;
        for page_number in 1.. {
            if page_number > MAX_PAGES {
                bail!(
                    "Price List GetProducts for {instance_type} in {region}: still a next page after {MAX_PAGES} \
                     pages; one instance type takes one or two, so the endpoint is not answering as AWS does"
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let page = tokio::time::timeout(left, request.clone().set_next_token(token.take()).send())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "Price List GetProducts for {instance_type} in {region}: no last page before the \
                         command's deadline ({} pages read)",
                        page_number - 1
                    )
                })?
                .map_err(summary)
                .with_context(|| format!("Price List GetProducts for {instance_type} in {region}"))?;
            for product in page.price_list() {
                prices.extend(on_demand_prices(product).context("Price List GetProducts: a product")?);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        match prices[..] {
            [] => Ok(None),
            [price] => Ok(Some(price)),
            _ => bail!(
                "the Price List has {} on-demand prices for {instance_type} in {region} after the filters \
                 ({}); expected one",
                prices.len(),
                FILTERS.map(|(k, v)| format!("{k}={v}")).join(", ")
            ),
        }
    }
}

/// The hourly USD prices in one Price List product document (a JSON string):
/// `terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD` where `unit` is `Hrs`.
pub(crate) fn on_demand_prices(product: &str) -> Result<Vec<f64>> {
    let doc: Value = serde_json::from_str(product).context("not JSON")?;
    let mut prices = Vec::new();
    let offers = doc["terms"]["OnDemand"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values());
    for offer in offers {
        let dimensions = offer["priceDimensions"]
            .as_object()
            .into_iter()
            .flat_map(|d| d.values());
        for dimension in dimensions {
            if dimension["unit"].as_str() != Some("Hrs") {
                continue;
            }
            let text = dimension["pricePerUnit"]["USD"]
                .as_str()
                .context("a price without USD")?;
            let price: f64 = text
                .parse()
                .with_context(|| format!("price {text:?} is not a number"))?;
            if !(price.is_finite() && price >= 0.0) {
                bail!("price {text:?} is not a price");
            }
            prices.push(price);
        }
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hourly_on_demand_price() {
        let product = r#"{"product": {"sku": "X", "attributes": {"instanceType": "c5.xlarge"}},
            "terms": {"OnDemand": {"X.JRTCKXETXF": {"priceDimensions": {"X.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": "0.1700000000"}}}}},
              "Reserved": {"X.Y": {"priceDimensions": {"X.Y.Z": {"unit": "Hrs", "pricePerUnit": {"USD": "0.1"}}}}}}}"#;
        assert_eq!(on_demand_prices(product).unwrap(), vec![0.17]);
        assert!(on_demand_prices(r#"{"terms": {}}"#).unwrap().is_empty());
        let bad = product.replace("0.1700000000", "free");
        assert!(on_demand_prices(&bad).unwrap_err().to_string().contains("free"));
        assert!(on_demand_prices("{").is_err());
    }
}
