//! The Slurm nodes as `scontrol show nodes -o` lists them: the head node's sweep needs
//! each node's addresses to find the EC2 instance behind it.

/// A Slurm node's name and the addresses it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    pub addr: String,
    pub hostname: String,
}

/// Parses `scontrol show nodes -o` (one node per line, `Key=Value` tokens).
pub fn parse_scontrol_nodes(text: &str) -> Vec<SlurmNode> {
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|t| t.strip_prefix(key))
                    .map(str::to_string)
                    .unwrap_or_default()
            };
            let name = field("NodeName=");
            (!name.is_empty()).then(|| SlurmNode {
                addr: field("NodeAddr="),
                hostname: field("NodeHostName="),
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_their_addresses() {
        let nodes = parse_scontrol_nodes(
            "NodeName=q-dy-c5-1 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.0.0.5 NodeHostName=ip-10-0-0-5 Version=23.02\n\
             NodeName=q-dy-c5-2 NodeAddr=q-dy-c5-2 NodeHostName=q-dy-c5-2 OS=Linux 5.15 Reason=x NodeAddr=1.2.3.4\n",
        );
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].addr, "10.0.0.5");
        assert_eq!(nodes[1].addr, "q-dy-c5-2");
    }
}
