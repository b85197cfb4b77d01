//! `cost-tags prices refresh` through the real aws-sdk-ec2 and aws-sdk-pricing: EC2 from
//! moto (DescribeInstanceTypes, DescribeSubnets) behind the proxy, which answers
//! DescribeSpotPriceHistory itself with prices that change over time (moto's is one
//! fixed price); the Price List from its stand-in. Then the report prices a month from
//! the cache alone, checked against a hand computation.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::aws_proxy::AwsProxy;
use crate::support::moto::{self, MotoServer};
use crate::support::price_list::{ec2_product, linux_product, PriceListStandIn};

/// c5.xlarge spot prices: 0.06/h in us-east-1a until 12:00 on the 10th, then 0.09/h;
/// 0.10/h throughout in us-east-1b.
const SPOT_HISTORY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <spotPriceHistorySet>
    <item><instanceType>c5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.090000</spotPrice><timestamp>2024-03-10T12:00:00.000Z</timestamp><availabilityZone>us-east-1a</availabilityZone></item>
    <item><instanceType>c5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.060000</spotPrice><timestamp>2024-03-01T00:00:00.000Z</timestamp><availabilityZone>us-east-1a</availabilityZone></item>
    <item><instanceType>c5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.100000</spotPrice><timestamp>2024-03-01T00:00:00.000Z</timestamp><availabilityZone>us-east-1b</availabilityZone></item>
  </spotPriceHistorySet>
  <nextToken/>
</DescribeSpotPriceHistoryResponse>"#;

/// The products of the stand-in: one right price per type, and the decoys the filters
/// must leave out (Windows, dedicated tenancy, unused reservation capacity, pre-installed
/// SQL, another region).
pub(crate) fn products() -> Vec<Value> {
    let decoy = |sku: &str, field: &str, value: &str| {
        let mut attrs = vec![
            ("instanceType", "c5.xlarge"),
            ("regionCode", "us-east-1"),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        ];
        for a in attrs.iter_mut() {
            if a.0 == field {
                a.1 = value;
            }
        }
        ec2_product(sku, &attrs, "9.99")
    };
    vec![
        decoy("W", "operatingSystem", "Windows"),
        linux_product("C5", "c5.xlarge", "us-east-1", "0.1700000000"),
        decoy("D", "tenancy", "Dedicated"),
        decoy("U", "capacitystatus", "UnusedCapacityReservation"),
        decoy("S", "preInstalledSw", "SQL Std"),
        linux_product("EU", "c5.xlarge", "eu-west-1", "0.1920000000"),
        linux_product("G4", "g4dn.xlarge", "us-east-1", "0.5260000000"),
    ]
}

struct Setup {
    moto: MotoServer,
    proxy: AwsProxy,
    dir: tempfile::TempDir,
    subnet: String,
}

fn setup() -> Option<Setup> {
    let moto = MotoServer::start()?;
    let proxy = AwsProxy::start(&moto.endpoint());
    proxy.answer("DescribeSpotPriceHistory", SPOT_HISTORY);
    let client = moto.client();
    let subnet = moto::block_on(async {
        let vpc = client.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
        let subnet = client
            .create_subnet()
            .vpc_id(vpc_id)
            .cidr_block("10.0.1.0/24")
            .availability_zone("us-east-1a")
            .send()
            .await
            .unwrap();
        subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_string()
    });
    Some(Setup {
        moto,
        proxy,
        dir: tempfile::tempdir().unwrap(),
        subnet,
    })
}

impl Setup {
    /// Settings with no `[pricing.instances]` at all: a spot queue of c5.xlarge in the
    /// subnet, an on-demand queue of g4dn.xlarge.
    fn config(&self) -> std::path::PathBuf {
        let fleet = self.dir.path().join("fleet-config.json");
        std::fs::write(
            &fleet,
            format!(
                r#"{{"spot": {{"c5": {{"Api": "create-fleet", "CapacityType": "spot",
                      "Instances": [{{"InstanceType": "c5.xlarge"}}], "Networking": {{"SubnetIds": ["{}"]}}}}}},
                   "gpu": {{"g4": {{"Api": "run-instances", "CapacityType": "on-demand",
                      "Instances": [{{"InstanceType": "g4dn.xlarge"}}]}}}}}}"#,
                self.subnet
            ),
        )
        .unwrap();
        let config = self.dir.path().join("cost-tags.toml");
        std::fs::write(
            &config,
            format!(
                "project_source = \"comment\"\ncache_dir = \"{dir}/run\"\n[pricing]\nfleet_config = \"{}\"\n\
                 cache_file = \"{dir}/prices.json\"\n",
                fleet.display(),
                dir = self.dir.path().display()
            ),
        )
        .unwrap();
        config
    }

    fn cost_tags(&self, config: &Path, price_list: &PriceListStandIn, args: &[&str]) -> Output {
        let mut cmd = Command::new(crate::bin("cost-tags"));
        moto::apply_env(&mut cmd, &self.proxy.endpoint());
        cmd.env("AWS_ENDPOINT_URL_PRICING", price_list.endpoint())
            .env_remove("COST_TAGS_CONFIG")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run cost-tags")
    }

    /// [`Setup::cost_tags`] killed (by its pid) if it runs longer than `limit`: `None` then.
    fn cost_tags_within(
        &self,
        config: &Path,
        price_list: &PriceListStandIn,
        args: &[&str],
        limit: std::time::Duration,
    ) -> Option<Output> {
        let mut cmd = Command::new(crate::bin("cost-tags"));
        moto::apply_env(&mut cmd, &self.proxy.endpoint());
        let mut child = cmd
            .env("AWS_ENDPOINT_URL_PRICING", price_list.endpoint())
            .env_remove("COST_TAGS_CONFIG")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cost-tags");
        let until = std::time::Instant::now() + limit;
        while child.try_wait().expect("wait for cost-tags").is_none() {
            if std::time::Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(child.wait_with_output().expect("cost-tags' output"))
    }

    fn cache(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("prices.json")).unwrap()).unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn refresh_reads_aws_and_the_report_prices_a_month_from_the_cache() {
    let Some(s) = setup() else { return };
    let price_list = PriceListStandIn::start(products());
    let config = s.config();
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let cache = s.cache();
    assert_eq!(cache["format"], "cost-tags-prices/1");
    assert_eq!(cache["region"], "us-east-1");
    let c5 = &cache["instance_types"]["c5.xlarge"];
    assert_eq!(
        (c5["vcpus"].as_u64(), c5["cores"].as_u64()),
        (Some(4), Some(2)),
        "{cache}"
    );
    assert_eq!(
        c5["on_demand"].as_f64(),
        Some(0.17),
        "the filters leave the one Linux price: {cache}"
    );
    let g4 = &cache["instance_types"]["g4dn.xlarge"];
    assert_eq!(
        (g4["gpus"].as_u64(), g4["on_demand"].as_f64()),
        (Some(1), Some(0.526)),
        "{cache}"
    );
    assert_eq!(cache["zones"]["spot"], serde_json::json!(["us-east-1a"]), "{cache}");
    assert_eq!(
        cache["spot"]["c5.xlarge"]["us-east-1a"].as_array().map(Vec::len),
        Some(2),
        "{cache}"
    );
    // One product a page and more than one product per query at first: every page read.
    assert!(price_list.requests() >= 2);
    assert_eq!(s.proxy.count("DescribeSpotPriceHistory"), 1);

    let sacct = s.dir.path().join("sacct.txt");
    std::fs::write(
        &sacct,
        "JobID|State|User|Account|Partition|Start|End|NNodes|NCPUS|AllocTRES|NodeList|Comment\n\
         202|COMPLETED|u1|a|spot|2024-03-10T11:00:00|2024-03-10T14:00:00|1|4|cpu=4,node=1|spot-dy-c5-1|P1\n\
         204|COMPLETED|u2|a|gpu|2024-03-20T00:00:00|2024-03-20T01:00:00|1|1|cpu=1,gres/gpu=1,node=1|gpu-dy-g4-1|P2\n",
    )
    .unwrap();
    let args = [
        "report",
        "--sacct-file",
        sacct.to_str().unwrap(),
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-31",
        "--format",
        "json",
    ];
    let out = s.cost_tags(&config, &price_list, &args);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cost = |project: &str| {
        let group = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"]["project"] == project);
        let cost = group.unwrap_or_else(|| panic!("{project} in {doc}"))["cost"]
            .as_f64()
            .unwrap();
        (cost * 1e6).round() / 1e6
    };
    // 202: spot in the queue's zone us-east-1a, 1 h at 0.06 and 2 h at 0.09 = 0.24
    assert_eq!(cost("P1"), 0.24, "{doc}");
    // 204: one of 4 CPUs, but the node's only GPU: the whole node, 1 h x 0.526
    assert_eq!(cost("P2"), 0.526, "{doc}");
    assert_eq!(doc["unpriced"]["jobs"], 0, "{doc}");
    let sources = &doc["price_sources"];
    assert_eq!(sources["c5.xlarge"]["on_demand"], "price cache", "{doc}");
    assert_eq!(
        sources["c5.xlarge"]["spot"]["spot"], "spot price history, us-east-1a",
        "{doc}"
    );
    assert!(sources["g4dn.xlarge"]["age_seconds"].as_i64().is_some(), "{doc}");

    let table = s.cost_tags(&config, &price_list, &args[..args.len() - 2]);
    let table = text(&table);
    assert!(
        table.contains("price: c5.xlarge spot in partition spot: spot price history, us-east-1a"),
        "{table}"
    );
    assert!(
        table.contains("price: g4dn.xlarge on demand from the price cache"),
        "{table}"
    );
}

#[test]
fn a_failed_refresh_keeps_the_old_cache_and_exits_1() {
    let Some(s) = setup() else { return };
    let config = s.config();
    let price_list = PriceListStandIn::start(products());
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(s.dir.path().join("prices.json")).unwrap();

    // Two Linux prices left for c5.xlarge after the filters: a guess would be wrong.
    let mut ambiguous = products();
    ambiguous.push(linux_product("C5B", "c5.xlarge", "us-east-1", "0.2000000000"));
    let price_list = PriceListStandIn::start(ambiguous);
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 on-demand prices for c5.xlarge") && err.contains("old cache is kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(s.dir.path().join("prices.json")).unwrap(), before);

    // EC2 refusing every call (the proxy closes connections): exit 1, old cache kept.
    s.proxy.set_mode(crate::support::aws_proxy::ProxyMode::Refuse);
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read(s.dir.path().join("prices.json")).unwrap(), before);
}

/// Issue 20, item 4: a Price List endpoint that always hands out a new NextToken. The
/// refresh stops after its page bound, names the instance type, exits 1 and keeps the
/// old cache byte for byte.
#[test]
fn endless_price_list_pages_stop_at_the_bound_and_keep_the_old_cache() {
    let Some(s) = setup() else { return };
    let config = s.config();
    let out = s.cost_tags(&config, &PriceListStandIn::start(products()), &["prices", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(s.dir.path().join("prices.json")).unwrap();

    let endless = PriceListStandIn::endless(products());
    let started = std::time::Instant::now();
    let out = s
        .cost_tags_within(
            &config,
            &endless,
            &["prices", "refresh"],
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|| {
            panic!(
                "prices refresh still running after 60 s and {} Price List requests",
                endless.requests()
            )
        });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the on-demand price of ")
            && err.contains("still a next page after 20 pages")
            && (err.contains("c5.xlarge in us-east-1") || err.contains("g4dn.xlarge in us-east-1"))
            && err.contains("old cache is kept"),
        "{err}"
    );
    // Two instance types, 20 pages each at most.
    assert!(endless.requests() <= 40, "{} requests", endless.requests());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(std::fs::read(s.dir.path().join("prices.json")).unwrap(), before);
}

/// One day of Cost Explorer's answer: the cluster's cost per project tag value.
pub(crate) fn ce_day(day: &str, next: &str, amounts: &[(&str, &str)]) -> Value {
    let groups: Vec<Value> = amounts
        .iter()
        .map(|(project, amount)| {
            serde_json::json!({
                "Keys": [format!("aws-parallelcluster-project${project}")],
                "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}
            })
        })
        .collect();
    serde_json::json!({"TimePeriod": {"Start": day, "End": next}, "Total": {}, "Groups": groups, "Estimated": false})
}

#[test]
fn report_billed_puts_the_bill_beside_the_estimate_and_it_all_adds_up() {
    let Some(s) = setup() else { return };
    let price_list = PriceListStandIn::start(products());
    let config = s.config();
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    // Two pages: the second is asked for with the first one's token.
    s.moto.queue_cost_and_usage(&[
        serde_json::json!({
            "ResultsByTime": [ce_day("2024-03-10", "2024-03-11", &[("P1", "0.30"), ("", "1.20")])],
            "NextPageToken": "page-2"
        }),
        serde_json::json!({
            "ResultsByTime": [ce_day("2024-03-20", "2024-03-21", &[("P2", "0.60"), ("", "0.80")])]
        }),
    ]);
    let sacct = s.dir.path().join("sacct.txt");
    std::fs::write(
        &sacct,
        "202|COMPLETED|u1|a|spot|2024-03-10T11:00:00|2024-03-10T14:00:00|1|4|cpu=4,node=1|spot-dy-c5-1|P1\n\
         204|COMPLETED|u2|a|gpu|2024-03-20T00:00:00|2024-03-20T01:00:00|1|1|cpu=1,gres/gpu=1,node=1|gpu-dy-g4-1|P2\n",
    )
    .unwrap();
    let report = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "--sacct-file",
            sacct.to_str().unwrap(),
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-31",
            "--billed",
            "--cluster-name",
            "mycluster",
        ];
        args.extend_from_slice(extra);
        let out = s.cost_tags(&config, &price_list, &args);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let round = |v: &Value| (v.as_f64().unwrap() * 1e6).round() / 1e6;
    let group = |doc: &Value, project: &str| -> Value {
        doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"]["project"] == project)
            .unwrap()
            .clone()
    };

    // Estimates (see the test above): P1 0.24, P2 0.526; together 0.766.
    let doc: Value = serde_json::from_slice(&report(&["--format", "json"]).stdout).unwrap();
    let billed = &doc["billed"];
    assert_eq!(billed["metric"], "UnblendedCost");
    assert_eq!(
        (round(&billed["total"]), round(&billed["untagged"])),
        (2.9, 2.0),
        "{doc}"
    );
    assert_eq!(billed["by_project"], serde_json::json!({"P1": 0.3, "P2": 0.6}), "{doc}");
    assert_eq!(billed["requests"], 2, "every page followed: {doc}");
    assert_eq!(round(&group(&doc, "P1")["billed_cost"]), 0.3, "{doc}");
    assert_eq!(round(&group(&doc, "P2")["billed_cost"]), 0.6, "{doc}");
    let notes = billed["notes"].to_string();
    assert!(
        notes.contains("lags by up to a day") && notes.contains("0.01 USD each"),
        "{notes}"
    );

    // Proportional: the untagged 2.00 goes 0.24/0.766 to P1 and 0.526/0.766 to P2.
    let doc: Value =
        serde_json::from_slice(&report(&["--format", "json", "--overhead", "proportional"]).stdout).unwrap();
    let (p1, p2) = (group(&doc, "P1"), group(&doc, "P2"));
    assert_eq!(round(&p1["overhead_cost"]), 0.626632, "2.00 x 0.24 / 0.766: {doc}");
    assert_eq!(round(&p2["overhead_cost"]), 1.373368, "2.00 x 0.526 / 0.766: {doc}");
    assert_eq!(round(&p1["billed_cost"]), 0.926632, "0.30 + its share: {doc}");
    let sum = p1["billed_cost"].as_f64().unwrap() + p2["billed_cost"].as_f64().unwrap();
    assert!(
        (sum - 2.9).abs() < 1e-5,
        "the projects' billed costs add up to the bill: {sum}"
    );

    let table = String::from_utf8(report(&[]).stdout).unwrap();
    // The last columns of a line: COST, BILLED, DIFF (UNPRICED is empty).
    let last = |label: &str, n: usize| {
        let line = table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {table}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - n..].join(" ")
    };
    assert!(table.contains("BILLED (USD)   DIFF"), "{table}");
    assert_eq!(last("P1", 3), "0.24 0.30 -0.06", "{table}");
    assert_eq!(
        last("(untagged)", 3),
        "(untagged) 2.00 -2.00",
        "no estimate, all billed: {table}"
    );
    assert_eq!(last("TOTAL", 3), "0.77 2.90 -2.13", "{table}");
    assert!(table.contains("lags by up to a day"), "{table}");
    let csv = String::from_utf8(report(&["--format", "csv"]).stdout).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",currency,billed_cost,diff,wasted_cost,wasted_unknown_jobs"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("untagged,") && l.ends_with(",2.000000,-2.000000,,0")),
        "{csv}"
    );
}

/// Issue 20, item 3: Cost Explorer amounts that are not finite (`NaN`, `1e400`) are
/// refused where they are read: exit 1 naming the period, the project and the field, no
/// report, and no `NaN` or `inf` printed. Negative amounts (credits, refunds) are kept, and
/// the notes say so.
#[test]
fn report_billed_refuses_non_finite_amounts_and_keeps_credits() {
    let Some(s) = setup() else { return };
    let price_list = PriceListStandIn::start(products());
    let config = s.config();
    let out = s.cost_tags(&config, &price_list, &["prices", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let sacct = s.dir.path().join("sacct.txt");
    std::fs::write(
        &sacct,
        "202|COMPLETED|u1|a|spot|2024-03-10T11:00:00|2024-03-10T14:00:00|1|4|cpu=4,node=1|spot-dy-c5-1|P1\n",
    )
    .unwrap();
    // moto keeps one queued answer per distinct request: a cluster name per case.
    let report = |cluster: &str, format: &str| {
        let args = [
            "report",
            "--sacct-file",
            sacct.to_str().unwrap(),
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-31",
            "--billed",
            "--cluster-name",
            cluster,
            "--format",
            format,
        ];
        s.cost_tags(&config, &price_list, &args)
    };

    for (cluster, bad) in [("nan-cluster", "NaN"), ("huge-cluster", "1e400")] {
        s.moto.queue_cost_and_usage(&[serde_json::json!({
            "ResultsByTime": [ce_day("2024-03-10", "2024-03-11", &[("P1", "0.30"), ("P2", bad)])]
        })]);
        for format in ["table", "csv", "json"] {
            let out = report(cluster, format);
            assert_eq!(out.status.code(), Some(1), "{bad} {format}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(
                    "Metrics.UnblendedCost.Amount of project \"P2\" for 2024-03-10 to 2024-03-11 is not a finite number"
                ),
                "{bad} {format}: {err}"
            );
            assert!(out.stdout.is_empty(), "{bad} {format}: no report: {}", text(&out));
            let all = text(&out).to_lowercase();
            assert!(!all.contains("nan") && !all.contains("inf"), "{bad} {format}: {all}");
        }
    }

    // Credits: P1 0.30 then -0.10, and -0.50 untagged.
    s.moto.queue_cost_and_usage(&[serde_json::json!({
        "ResultsByTime": [
            ce_day("2024-03-10", "2024-03-11", &[("P1", "0.30")]),
            ce_day("2024-03-11", "2024-03-12", &[("P1", "-0.10"), ("", "-0.50")]),
        ]
    })]);
    let out = report("credited", "table");
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    let last = |label: &str| {
        let line = table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {table}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - 3..].join(" ")
    };
    assert_eq!(last("P1"), "0.24 0.20 +0.04", "{table}");
    assert_eq!(last("(untagged)"), "(untagged) -0.50 +0.50", "{table}");
    assert_eq!(last("TOTAL"), "0.24 -0.30 +0.54", "{table}");
    assert!(
        table.contains("2 amounts below 0 (-0.60 USD in all): credits or refunds, counted as billed"),
        "{table}"
    );
    let out = report("credited", "csv");
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("untagged,") && l.ends_with(",-0.500000,0.500000,,0")),
        "{csv}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("credits or refunds"),
        "{}",
        text(&out)
    );
}
