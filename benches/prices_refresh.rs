//! Benchmark of `cost-tags prices refresh` as a whole process for 20 instance types,
//! against loopback stand-ins: moto for DescribeInstanceTypes, the proxy answering
//! DescribeSpotPriceHistory, the Price List stand-in (one product a page, so each type
//! takes two GetProducts pages). Target: under 5 s. Prints figures; asserts nothing about
//! time. Run: `cargo bench --bench prices_refresh`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cost_tags_test_support as support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::aws_proxy::AwsProxy;
use support::moto::{apply_env, MotoServer};
use support::price_list::{linux_product, PriceListStandIn};

const TYPES: [&str; 20] = [
    "c5.large",
    "c5.xlarge",
    "c5.2xlarge",
    "c5.4xlarge",
    "c5.9xlarge",
    "m5.large",
    "m5.xlarge",
    "m5.2xlarge",
    "m5.4xlarge",
    "r5.large",
    "r5.xlarge",
    "r5.2xlarge",
    "t3.micro",
    "t3.small",
    "t3.medium",
    "g4dn.xlarge",
    "g4dn.2xlarge",
    "p3.2xlarge",
    "c6i.large",
    "c6i.xlarge",
];
const RUNS: usize = 5;

fn spot_history() -> String {
    let items: String = TYPES
        .iter()
        .flat_map(|t| ["us-east-1a", "us-east-1b"].map(move |z| (t, z)))
        .map(|(t, z)| {
            format!(
                "<item><instanceType>{t}</instanceType><productDescription>Linux/UNIX</productDescription>\
                 <spotPrice>0.050000</spotPrice><timestamp>2024-03-01T00:00:00.000Z</timestamp>\
                 <availabilityZone>{z}</availabilityZone></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeSpotPriceHistoryResponse \
         xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>1</requestId>\
         <spotPriceHistorySet>{items}</spotPriceHistorySet><nextToken/></DescribeSpotPriceHistoryResponse>"
    )
}

fn main() {
    let Some(moto) = MotoServer::start() else { return };
    let proxy = AwsProxy::start(&moto.endpoint());
    proxy.answer("DescribeSpotPriceHistory", &spot_history());
    let mut products = Vec::new();
    for (i, t) in TYPES.iter().enumerate() {
        products.push(linux_product(&format!("S{i}"), t, "us-east-1", "0.1000000000"));
        // A decoy per type in another region: the filters leave it out.
        products.push(linux_product(&format!("E{i}"), t, "eu-west-1", "0.1100000000"));
    }
    let price_list = PriceListStandIn::start(products);
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cost-tags.toml");
    std::fs::write(
        &settings,
        format!(
            "cache_dir = {:?}\n[pricing]\nfleet_config = \"\"\ncache_file = {:?}\n",
            dir.path().join("run"),
            dir.path().join("prices.json")
        ),
    )
    .unwrap();
    let mut walls: Vec<Duration> = Vec::new();
    for _ in 0..RUNS {
        let mut c = Command::new(support::bins!().cost_tags);
        apply_env(&mut c, &proxy.endpoint());
        c.env("AWS_ENDPOINT_URL_PRICING", price_list.endpoint())
            .arg("--config")
            .arg(&settings)
            .args(["prices", "refresh"])
            .args(TYPES.iter().flat_map(|t| ["--instance-type", t]))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let started = Instant::now();
        let status = c.status().unwrap();
        walls.push(started.elapsed());
        assert!(status.success(), "prices refresh failed");
    }
    walls.sort();
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("prices.json")).unwrap()).unwrap();
    let priced = cache["instance_types"]
        .as_object()
        .unwrap()
        .values()
        .filter(|t| t["on_demand"].is_number())
        .count();
    println!(
        "cost-tags prices refresh, {} instance types ({priced} priced), {} Price List requests in {RUNS} runs: \
         median {:.2} s, slowest {:.2} s (target under 5 s)",
        TYPES.len(),
        price_list.requests(),
        walls[RUNS / 2].as_secs_f64(),
        walls[RUNS - 1].as_secs_f64()
    );
}
