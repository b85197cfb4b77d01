//! The head node of a [`LocalCluster`] in controller mode: `cost-tags reconcile --cluster
//! --follow` running as a child of the test, against moto behind a front of its own that
//! throttles CreateTags and DeleteTags as EC2 does ([`ProxyMode::Ec2TagBuckets`]). The
//! compute node's hooks keep the cluster's own proxy ([`LocalCluster::proxy`]), so what
//! each side sends to EC2 is counted apart: in controller mode the hooks must send
//! nothing at all.
//!
//! The instances are tagged as ParallelCluster tags them (`parallelcluster:cluster-name`,
//! `parallelcluster:node-type`), and a Slurm node is matched to an instance as the
//! convergence matches them: NodeAddr or NodeHostName is the instance's private IP. The
//! fixture's slurmd must stay on 127.0.0.1 (its NodeAddr), so the IP goes in
//! NodeHostName, with `scontrol update` as ParallelCluster's resume program does when a
//! powering-up node's instance has been launched.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};

use super::aws_proxy::{AwsProxy, ProxyMode};
use super::local_cluster::LocalCluster;
use super::moto::{apply_env, block_on, error_text, MotoServer, AMI_ID};

pub const CLUSTER_TAG: &str = "parallelcluster:cluster-name";
pub const NODE_TYPE_TAG: &str = "parallelcluster:node-type";
/// The head node's cost tags, set by its administrator.
pub const ADMIN_TAGS: &[(&str, &str)] = &[("aws-parallelcluster-project", "Platform")];

/// `cost-tags reconcile --cluster --follow`, started by [`HeadNode::start`] and stopped
/// by its pid (SIGTERM, then SIGKILL if it does not end) by [`HeadNode::stop`] or on drop.
pub struct HeadNode {
    /// The head node's EC2 endpoint.
    pub front: AwsProxy,
    /// The ParallelCluster cluster's name (the value of [`CLUSTER_TAG`]).
    pub cluster: String,
    /// The head node's own instance, whose cost tags its administrator sets
    /// ([`ADMIN_TAGS`]): the convergence leaves them.
    pub instance: String,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl HeadNode {
    /// Launches the head node's instance and starts the service for `c`'s cluster,
    /// named as its Slurm cluster; `c` must have been started with `[tagging] mode =
    /// "controller"`.
    pub fn start(c: &LocalCluster) -> HeadNode {
        let cluster = c.slurm.cluster_name().to_string();
        let mut tags = vec![(CLUSTER_TAG, cluster.as_str()), (NODE_TYPE_TAG, "HeadNode")];
        tags.extend_from_slice(ADMIN_TAGS);
        let (instance, _) = launch_instance(&c.moto, None, &tags);
        let front = AwsProxy::start(&c.moto.endpoint());
        front.set_mode(ProxyMode::Ec2TagBuckets);
        let dir = tempfile::Builder::new().prefix("cost-tags-head").tempdir().unwrap();
        // stdout holds each line once; stderr repeats them as the log (module `log`).
        let log = dir.path().join("follow.out");
        let out = std::fs::File::create(&log).unwrap();
        let err = std::fs::File::create(dir.path().join("follow.err")).unwrap();
        let child = cost_tags(c, &front, dir.path())
            .args(["reconcile", "--cluster", "--follow", "--cluster-name", &cluster])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start cost-tags reconcile --cluster --follow");
        HeadNode {
            front,
            cluster,
            instance,
            log,
            child: Some(child),
            _dir: dir,
        }
    }

    /// `cost-tags status --cluster` on the head node, run to its end.
    pub fn status(&self, c: &LocalCluster) -> std::process::Output {
        cost_tags(c, &self.front, self._dir.path())
            .args(["status", "--cluster", "--cluster-name", &self.cluster])
            .output()
            .expect("run cost-tags status --cluster")
    }

    /// What the service printed so far on stdout.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it printed on stderr: the same lines, and whatever went wrong before them.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("follow.err")).unwrap_or_default()
    }

    /// Passes the service has ended so far (each prints one summary line).
    pub fn passes(&self) -> usize {
        self.log().matches("compute instances in sync").count()
    }

    /// Waits (polling, up to `timeout`) until `done`; panics with the service's output
    /// otherwise.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < until,
                "{what}: not within {timeout:?}\n--- cost-tags reconcile --cluster --follow:\n{}\n--- its stderr:\n{}",
                self.log(),
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to the service, by pid; its exit code once it has ended (SIGKILL after
    /// 30 s, then None).
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for HeadNode {
    fn drop(&mut self) {
        // Our own child only, by pid.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `cost-tags` as root on the head node: EC2 through `front`, the cluster's Slurm and
/// settings, and no environment file of its own (the compute node's, cost-tags.env,
/// points at the other proxy).
fn cost_tags(c: &LocalCluster, front: &AwsProxy, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(&c.bins.cost_tags);
    apply_env(&mut cmd, &front.endpoint());
    cmd.envs(c.slurm.env())
        .env("COST_TAGS_CONFIG", c.settings_path())
        .env("COST_TAGS_ENV_FILE", dir.join("no-cost-tags.env"))
        .stdin(Stdio::null());
    cmd
}

/// Launches one instance in moto carrying `tags` from its start (RunInstances with
/// TagSpecifications, as ParallelCluster launches compute nodes), at `private_ip` when
/// given; returns its id and private IP.
pub fn launch_instance(moto: &MotoServer, private_ip: Option<&str>, tags: &[(&str, &str)]) -> (String, String) {
    let client = moto.client();
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build();
    block_on(async move {
        let out = client
            .run_instances()
            .image_id(AMI_ID)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .set_private_ip_address(private_ip.map(str::to_string))
            .tag_specifications(spec)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto RunInstances: {}", error_text(&e)));
        let i = &out.instances()[0];
        (
            i.instance_id().expect("instance id").to_string(),
            i.private_ip_address().expect("private IP").to_string(),
        )
    })
}

/// The private IP of instance `id`.
pub fn private_ip(moto: &MotoServer, id: &str) -> String {
    let client = moto.client();
    block_on(async move {
        let out = client
            .describe_instances()
            .filters(Filter::builder().name("instance-id").values(id).build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto DescribeInstances: {}", error_text(&e)));
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.private_ip_address())
            .unwrap_or_else(|| panic!("no instance {id}"))
            .to_string()
    })
}

/// Points Slurm's node at an instance, as ParallelCluster's resume program does once the
/// instance is launched: NodeHostName becomes its private IP (NodeAddr stays 127.0.0.1,
/// where the fixture's slurmd listens).
pub fn set_node_host(c: &LocalCluster, ip: &str) {
    let out = c.slurm.run_root(
        "scontrol",
        &[
            "update",
            &format!("NodeName={}", c.slurm.node_name()),
            &format!("NodeHostName={ip}"),
        ],
    );
    assert!(
        out.status.success(),
        "scontrol update NodeHostName: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = c
        .slurm
        .run_root("scontrol", &["show", "node", c.slurm.node_name(), "-o"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("NodeHostName={ip} ")) && shown.contains("NodeAddr=127.0.0.1 "),
        "{shown}"
    );
}
