//! What `scontrol show nodes -o` and `scontrol show partitions -o` say: the head node's
//! sweep needs each node's addresses to find the EC2 instance behind it, and `budget
//! refresh` each partition's time limits for the worst case of a submission.

/// A Slurm node's name and the addresses it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlurmNode {
    pub name: String,
    pub addr: String,
    pub hostname: String,
}

/// Parses `scontrol show nodes -o` (one node per line, `Key=Value` tokens).
pub(crate) fn parse_scontrol_nodes(text: &str) -> Vec<SlurmNode> {
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

/// A partition's time limits in minutes (`None`: not set, or UNLIMITED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlurmPartition {
    pub name: String,
    pub default_minutes: Option<u64>,
    pub max_minutes: Option<u64>,
    /// `Default=YES`: where jobs without `--partition` go.
    pub is_default: bool,
}

/// Parses `scontrol show partitions -o` (one partition per line).
pub(crate) fn parse_scontrol_partitions(text: &str) -> Vec<SlurmPartition> {
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|t| t.strip_prefix(key))
                    .unwrap_or_default()
            };
            let name = field("PartitionName=");
            (!name.is_empty()).then(|| SlurmPartition {
                name: name.to_string(),
                default_minutes: slurm_minutes(field("DefaultTime=")),
                max_minutes: slurm_minutes(field("MaxTime=")),
                is_default: field("Default=") == "YES",
            })
        })
        .collect()
}

/// Slurm's time format in whole minutes (rounded up): `MM`, `MM:SS`, `HH:MM:SS`,
/// `D-HH`, `D-HH:MM`, `D-HH:MM:SS`; `None` for NONE, UNLIMITED, INFINITE or anything else.
pub(crate) fn slurm_minutes(text: &str) -> Option<u64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let seconds = match (text.contains('-'), parts.as_slice()) {
        (false, &[m]) => m * 60,
        (false, &[m, s]) => m * 60 + s,
        (_, &[h, m, s]) => h * 3600 + m * 60 + s,
        (true, &[h]) => h * 3600,
        (true, &[h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some((days * 86_400 + seconds).div_ceil(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_their_time_limits() {
        let parts = parse_scontrol_partitions(
            "PartitionName=compute AllowGroups=ALL Default=YES DefaultTime=01:00:00 MaxTime=2-00:00:00 Nodes=q-dy-c5-[1-10]\n\
             PartitionName=gpu Default=NO DefaultTime=NONE MaxTime=UNLIMITED Nodes=g-1\n",
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].default_minutes, parts[0].max_minutes, parts[0].is_default),
            (Some(60), Some(2880), true)
        );
        assert_eq!(
            (parts[1].default_minutes, parts[1].max_minutes, parts[1].is_default),
            (None, None, false)
        );
        for (text, minutes) in [
            ("30", Some(30)),
            ("1:30", Some(2)),
            ("1-12", Some(2160)),
            ("0-0:5", Some(5)),
            ("INFINITE", None),
        ] {
            assert_eq!(slurm_minutes(text), minutes, "{text}");
        }
    }

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
