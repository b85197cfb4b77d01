//! ParallelCluster's /etc/parallelcluster/cfnconfig, written on every node: the node's
//! role (`cfn_node_type`), the cluster's name (`stack_name`) and region (`cfn_region`).
//! One parser serves every reader (the installer, the report, the cluster sweep).

use std::path::Path;

/// Where ParallelCluster 3 writes cfnconfig, newest layout first.
pub(crate) const PATHS: [&str; 2] = ["/etc/parallelcluster/cfnconfig", "/opt/parallelcluster/cfnconfig"];

/// The `key=value` lines of a cfnconfig. The file is a shell fragment that
/// ParallelCluster's own scripts source, so a later line wins, `export ` is allowed and
/// values may be quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cfnconfig {
    pairs: Vec<(String, String)>,
}

/// A node's role in the cluster, from `cfn_node_type` (or `cost-tags install --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NodeRole {
    /// The head node: slurmctld, the release in /opt/slurm, the periodic jobs.
    Head,
    /// A compute node: runs jobs, tags its instance in node mode.
    Compute,
    /// A login node: nothing to install.
    Login,
}

impl NodeRole {
    /// The role from its `cfn_node_type` value (`HeadNode`, `ComputeFleet`, `LoginNode`).
    pub(crate) fn from_node_type(value: &str) -> Option<NodeRole> {
        match value {
            "HeadNode" => Some(NodeRole::Head),
            "ComputeFleet" => Some(NodeRole::Compute),
            "LoginNode" => Some(NodeRole::Login),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeRole::Head => "head",
            NodeRole::Compute => "compute",
            NodeRole::Login => "login",
        }
    }
}

impl Cfnconfig {
    pub(crate) fn parse(text: &str) -> Cfnconfig {
        let pairs = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
                if line.starts_with('#') {
                    return None;
                }
                let (key, value) = line.split_once('=')?;
                let value = value.trim();
                let value = strip_quotes(value, '"')
                    .or_else(|| strip_quotes(value, '\''))
                    .unwrap_or(value);
                Some((key.trim().to_string(), value.to_string()))
            })
            .collect();
        Cfnconfig { pairs }
    }

    /// Reads and parses `path`.
    pub(crate) fn read(path: &Path) -> std::io::Result<Cfnconfig> {
        std::fs::read_to_string(path).map(|text| Cfnconfig::parse(&text))
    }

    /// The cluster's name: `explicit` (`--cluster-name`) when given, else `stack_name` from
    /// the cfnconfig at `path`, with an error saying to pass `--cluster-name` otherwise.
    pub(crate) fn cluster_name(explicit: Option<&str>, path: &Path) -> anyhow::Result<String> {
        use anyhow::Context;
        if let Some(name) = explicit {
            return Ok(name.to_string());
        }
        let cfn = Cfnconfig::read(path)
            .with_context(|| format!("cannot read {} (or pass --cluster-name)", path.display()))?;
        cfn.stack_name()
            .map(str::to_string)
            .with_context(|| format!("no stack_name in {} (pass --cluster-name)", path.display()))
    }

    /// The value of `key` (its last line), `None` when absent or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn stack_name(&self) -> Option<&str> {
        self.get("stack_name")
    }

    pub(crate) fn region(&self) -> Option<&str> {
        self.get("cfn_region")
    }

    /// `cfn_node_type` as written (`HeadNode`, ...); see [`NodeRole::from_node_type`].
    pub(crate) fn node_type(&self) -> Option<&str> {
        self.get("cfn_node_type")
    }
}

fn strip_quotes(value: &str, quote: char) -> Option<&str> {
    value.strip_prefix(quote)?.strip_suffix(quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_name() {
        let c = Cfnconfig::parse("cfn_region=us-east-1\nstack_name=my-cluster\n");
        assert_eq!(c.stack_name(), Some("my-cluster"));
        assert_eq!(c.region(), Some("us-east-1"));
        assert_eq!(Cfnconfig::parse("stack_name=\"q\"").stack_name(), Some("q"));
        assert_eq!(Cfnconfig::parse("stack_name='q r'").stack_name(), Some("q r"));
        assert_eq!(Cfnconfig::parse("x=1").stack_name(), None);
        assert_eq!(Cfnconfig::parse("stack_name=").stack_name(), None);
    }

    #[test]
    fn the_cluster_name_is_the_option_else_the_stack_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfnconfig");
        assert_eq!(Cfnconfig::cluster_name(Some("x"), &path).unwrap(), "x");
        let e = Cfnconfig::cluster_name(None, &path).unwrap_err();
        assert!(format!("{e:#}").contains("or pass --cluster-name"), "{e:#}");
        std::fs::write(&path, "stack_name=c1\n").unwrap();
        assert_eq!(Cfnconfig::cluster_name(None, &path).unwrap(), "c1");
        std::fs::write(&path, "cfn_region=x\n").unwrap();
        assert!(format!("{:#}", Cfnconfig::cluster_name(None, &path).unwrap_err()).contains("no stack_name"));
    }

    #[test]
    fn the_last_line_wins_as_when_sourced() {
        let c = Cfnconfig::parse(
            "cfn_node_type=ComputeFleet\n# cfn_node_type=LoginNode\nexport cfn_node_type = HeadNode\n",
        );
        assert_eq!(c.node_type(), Some("HeadNode"));
        assert_eq!(NodeRole::from_node_type(c.node_type().unwrap()), Some(NodeRole::Head));
        assert_eq!(NodeRole::from_node_type("Head"), None);
    }
}
