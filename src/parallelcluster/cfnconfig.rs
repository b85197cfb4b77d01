//! ParallelCluster's /etc/parallelcluster/cfnconfig, written on every node: the cluster's
//! name (`stack_name`) for commands that must find the cluster's instances.

/// `stack_name` from ParallelCluster's cfnconfig (`key=value` lines, maybe quoted).
pub fn cfnconfig_stack_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim().trim_start_matches("export ");
        let value = line.strip_prefix("stack_name=")?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_name() {
        assert_eq!(
            cfnconfig_stack_name("cfn_region=us-east-1\nstack_name=my-cluster\n").as_deref(),
            Some("my-cluster")
        );
        assert_eq!(cfnconfig_stack_name("stack_name=\"q\"").as_deref(), Some("q"));
        assert_eq!(cfnconfig_stack_name("x=1"), None);
    }
}
