//! A simulated ParallelCluster cluster for the head node's convergence: N instances in
//! moto tagged as the cluster's compute nodes, EC2's own CreateTags/DeleteTags throttling
//! in front of it ([`ProxyMode::Ec2TagBuckets`]), Slurm's `squeue` from the stand-in and
//! `scontrol show nodes` from a file (each node's NodeAddr is its instance's private IP).
//! Used by tests/integration/cluster_converge.rs and benches/tagging_scale.rs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aws_sdk_ec2::types::{Filter, InstanceMarketOptionsRequest, InstanceType, MarketType, Tag};
use serde_json::Value;

use super::aws_proxy::{AwsProxy, ProxyMode};
use super::bins::Bins;
use super::moto::{apply_env, block_on, error_text, MotoServer, AMI_ID};
use super::slurm_standin::{job, SlurmStandin};

pub const CLUSTER: &str = "c1";
pub const PROJECT: &str = "aws-parallelcluster-project";
pub const USER: &str = "aws-parallelcluster-username";
pub const JOBID: &str = "aws-parallelcluster-jobid";

/// moto launches this many instances a call without trouble.
const LAUNCH_BATCH: usize = 100;

pub struct SimCluster {
    pub moto: MotoServer,
    pub proxy: AwsProxy,
    pub slurm: SlurmStandin,
    pub dir: tempfile::TempDir,
    /// Instance ids; instance K is Slurm node `nodes[K]`.
    pub instances: Vec<String>,
    pub nodes: Vec<String>,
    pub bins: Bins,
}

impl SimCluster {
    /// `n` compute instances of cluster `c1`, no cost tag yet, and settings with `extra`
    /// lines. None when moto is missing (see [`super::require`]).
    /// `bins` are the binaries its commands run.
    pub fn start(bins: &Bins, n: usize, extra: &str) -> Option<SimCluster> {
        let moto = MotoServer::start()?;
        let mut instances = Vec::new();
        while instances.len() < n {
            let batch = (n - instances.len()).min(LAUNCH_BATCH);
            instances.extend(moto.run_instances(batch as i32));
        }
        let client = moto.client();
        for chunk in instances.chunks(500) {
            label_compute(&client, chunk.to_vec());
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nodes: Vec<String> = (0..n).map(|k| format!("q-dy-c5-{}", k + 1)).collect();
        write_scontrol(&moto, d, &nodes, &instances);
        let script = d.join("scontrol");
        std::fs::write(&script, format!("#!/bin/sh\ncat '{}/scontrol.out'\n", d.display())).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            d.join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\n{extra}",
                d.join("state"),
                d.join("run")
            ),
        )
        .unwrap();
        let proxy = AwsProxy::start(&moto.endpoint());
        proxy.set_mode(ProxyMode::Ec2TagBuckets);
        Some(SimCluster {
            moto,
            proxy,
            slurm: SlurmStandin::new(),
            dir,
            instances,
            nodes,
            bins: bins.clone(),
        })
    }

    /// A running job as squeue prints it, on the nodes of `indexes`.
    pub fn job(&self, id: u32, user: &str, project: &str, indexes: &[usize]) -> Value {
        let names: Vec<&str> = indexes.iter().map(|&k| self.nodes[k].as_str()).collect();
        let mut j = job(&id.to_string(), user, &names);
        j["comment"] = project.into();
        j["account"] = "".into();
        j
    }

    /// One job per node: node K runs job 1000+K of `user{K % users}`, `Project{K % projects}`.
    pub fn one_job_per_node(&self, projects: usize, users: usize) -> Vec<Value> {
        (0..self.nodes.len())
            .map(|k| {
                self.job(
                    1000 + k as u32,
                    &format!("user{}", k % users),
                    &format!("Project{}", k % projects),
                    &[k],
                )
            })
            .collect()
    }

    /// `cost-tags reconcile --cluster --cluster-name c1 ARGS`, not yet started.
    pub fn reconcile_command(&self, args: &[&str]) -> Command {
        self.cluster_command("reconcile", args)
    }

    /// `cost-tags status --cluster --cluster-name c1 ARGS`, not yet started.
    pub fn status_command(&self, args: &[&str]) -> Command {
        self.cluster_command("status", args)
    }

    /// `cost-tags SUBCOMMAND --cluster` on this cluster: its settings, the AWS front, and
    /// the Slurm stand-ins for squeue and scontrol.
    fn cluster_command(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bins.cost_tags);
        apply_env(&mut c, &self.proxy.endpoint());
        c.env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
            .args([subcommand, "--cluster", "--cluster-name", CLUSTER])
            .args(args)
            .arg("--squeue")
            .arg(self.slurm.squeue())
            .arg("--scontrol")
            .arg(self.scontrol())
            .stdin(Stdio::null());
        c
    }

    /// The wake file of `reconcile --cluster --follow` (in the settings' cache_dir).
    pub fn wake_file(&self) -> PathBuf {
        self.dir.path().join("run/wake")
    }

    fn scontrol(&self) -> PathBuf {
        self.dir.path().join("scontrol")
    }

    /// Every instance's cost tags (`aws-parallelcluster-*`), straight from moto.
    pub fn cost_tags(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        all_instances(&self.moto)
            .into_iter()
            .map(|(id, _, tags)| {
                let cost = tags
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
                    .collect();
                (id, cost)
            })
            .collect()
    }

    /// Sets `tags` on the instances of `indexes`, straight in moto.
    pub fn tag(&self, indexes: &[usize], tags: &[(&str, &str)]) {
        for &k in indexes {
            self.moto.create_tags(&self.instances[k], tags);
        }
    }

    /// Node `k` powers down and up again on a new spot instance (c5.large): the old
    /// instance is terminated, the new one carries the cluster's labels, and node `k`'s
    /// NodeAddr is its IP. Returns the new instance's id.
    pub fn replace_with_spot(&mut self, k: usize) -> String {
        let client = self.moto.client();
        let (old, replaced) = (self.instances[k].clone(), client.clone());
        let new = block_on(async move {
            replaced
                .terminate_instances()
                .instance_ids(old)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto TerminateInstances: {}", error_text(&e)));
            let out = replaced
                .run_instances()
                .image_id(AMI_ID)
                .instance_type(InstanceType::C5Large)
                .instance_market_options(
                    InstanceMarketOptionsRequest::builder()
                        .market_type(MarketType::Spot)
                        .build(),
                )
                .min_count(1)
                .max_count(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto RunInstances: {}", error_text(&e)));
            out.instances()[0].instance_id().expect("instance id").to_string()
        });
        label_compute(&client, vec![new.clone()]);
        self.instances[k] = new.clone();
        write_scontrol(&self.moto, self.dir.path(), &self.nodes, &self.instances);
        new
    }

    /// (instance type, lifecycle as the timeline says it, zone) of `id`, straight from moto.
    pub fn facts(&self, id: &str) -> (String, String, String) {
        let client = self.moto.client();
        let id = id.to_string();
        block_on(async move {
            let out = client
                .describe_instances()
                .instance_ids(id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto DescribeInstances: {}", error_text(&e)));
            let i = &out.reservations()[0].instances()[0];
            (
                i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                i.instance_lifecycle()
                    .map_or("on-demand".to_string(), |l| l.as_str().to_string()),
                i.placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    }
}

/// Tags `ids` as compute instances of cluster `c1` (and with a user tag of the site's).
fn label_compute(client: &aws_sdk_ec2::Client, ids: Vec<String>) {
    let client = client.clone();
    block_on(async move {
        client
            .create_tags()
            .set_resources(Some(ids))
            .tags(
                Tag::builder()
                    .key("parallelcluster:cluster-name")
                    .value(CLUSTER)
                    .build(),
            )
            .tags(Tag::builder().key("parallelcluster:node-type").value("Compute").build())
            .tags(Tag::builder().key("team").value("hpc").build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto CreateTags: {}", error_text(&e)));
    });
}

/// What the fake `scontrol show nodes` prints: node K at the private IP of instance K.
fn write_scontrol(moto: &MotoServer, dir: &std::path::Path, nodes: &[String], instances: &[String]) {
    let ips: BTreeMap<String, String> = all_instances(moto).into_iter().map(|(id, ip, _)| (id, ip)).collect();
    let scontrol: String = nodes
        .iter()
        .zip(instances)
        .map(|(node, id)| format!("NodeName={node} NodeAddr={} NodeHostName={node}\n", ips[id]))
        .collect();
    std::fs::write(dir.join("scontrol.out"), scontrol).unwrap();
}

/// (id, private IP, tags) of every instance in moto.
fn all_instances(moto: &MotoServer) -> Vec<(String, String, BTreeMap<String, String>)> {
    let client = moto.client();
    block_on(async move {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = client
                .describe_instances()
                .filters(Filter::builder().name("instance-state-name").values("running").build())
                .set_next_token(next.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto DescribeInstances: {}", error_text(&e)));
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let tags = i
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                found.push((
                    i.instance_id().unwrap_or_default().to_string(),
                    i.private_ip_address().unwrap_or_default().to_string(),
                    tags,
                ));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return found,
            }
        }
    })
}
