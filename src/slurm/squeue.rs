//! What cost-tags asks squeue, and how its answers are read: the jobs on one node (with
//! the project's field only when it is the project, last; see [`crate::slurm::fields`]),
//! their ids alone (which nothing a user writes can forge), and the nodes that run jobs.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::config::ProjectSource;
use crate::node::job::Job;
use crate::slurm::fields::{self, ProjectField};
use crate::slurm::hostlist;

/// squeue's format for one node's jobs under `source`: job id, user, partition, account,
/// then the project's own field when it is not the account. The comment is asked for
/// only when it is the project, and last (see [`crate::slurm::fields`]).
pub fn node_jobs_format(source: ProjectSource) -> String {
    let mut format = String::from("%A|%u|%P|%a");
    if let Some(field) = ProjectField::of(source) {
        format.push('|');
        format.push_str(field.squeue_code());
    }
    format
}

/// Fields of [`node_jobs_format`] before the project's own.
const NODE_JOBS_FIXED: usize = 4;

/// squeue's format that only lists job ids: nothing in it is free text, so no line of its
/// answer can be forged.
pub const JOB_IDS_FORMAT: &str = "%A";

/// Parses squeue's [`node_jobs_format`] lines into jobs. A line that is not a job line
/// continues the previous job's last field (Slurm prints a newline in free text raw).
/// A line that looks like a job line may still be such a continuation, forged: the
/// caller confirms the jobs with [`confirm_jobs`].
pub fn parse_node_jobs(text: &str, source: ProjectSource, cluster: &str) -> Result<Vec<Job>> {
    let project_field = ProjectField::of(source);
    let count = NODE_JOBS_FIXED + usize::from(project_field.is_some());
    let value = |s: &str| if s == "(null)" { String::new() } else { s.to_string() };
    // Each job with its last field, which continuation lines extend.
    let mut jobs: Vec<(Job, String)> = Vec::new();
    for line in text.lines() {
        let fields =
            fields::split(line, count, true).filter(|f| !f[0].is_empty() && f[0].bytes().all(|b| b.is_ascii_digit()));
        let Some(fields) = fields else {
            match jobs.last_mut() {
                Some((_, last)) => {
                    last.push('\n');
                    last.push_str(line);
                    continue;
                }
                None if line.trim().is_empty() => continue,
                None => anyhow::bail!("squeue printed an unexpected line: {line:?}"),
            }
        };
        let job = Job {
            id: fields[0].to_string(),
            user: value(fields[1]),
            project: String::new(),
            partition: value(fields[2]),
            account: value(fields[3]),
            cluster: cluster.to_string(),
        };
        jobs.push((job, fields[count - 1].to_string()));
    }
    Ok(jobs
        .into_iter()
        .map(|(mut job, last)| {
            match project_field {
                None => {
                    job.account = value(&last);
                    job.project = job.account.clone();
                }
                // A default wckey is printed with a leading `*`.
                Some(ProjectField::Wckey) => job.project = value(last.trim_start_matches('*')),
                Some(ProjectField::Comment) => job.project = value(&last),
            }
            job
        })
        .collect())
}

/// Keeps the jobs of `jobs` (from [`parse_node_jobs`]) that `ids` (squeue's
/// [`JOB_IDS_FORMAT`] answer, asked after) confirms, and fails when they disagree in a way
/// only a forged line explains: a job printed twice, or a job that the id list does not
/// have. The latter also happens when a job ended between the two queries; the next run
/// then agrees. A job listed only in `ids` started meanwhile; its prolog records it.
pub fn confirm_jobs(jobs: Vec<Job>, ids: &str) -> Result<Vec<Job>> {
    let listed = parse_job_ids(ids)?;
    let mut seen = BTreeSet::new();
    for job in &jobs {
        anyhow::ensure!(
            seen.insert(job.id.as_str()),
            "squeue printed job {} twice: a newline in a job's free text (its comment) forged a line",
            job.id
        );
        anyhow::ensure!(
            listed.contains(&job.id),
            "squeue printed job {} (user {:?}), which `squeue -o {JOB_IDS_FORMAT}` does not list: a newline \
             in another job's free text (its comment) forged that line, or the job ended meanwhile",
            job.id,
            job.user
        );
    }
    Ok(jobs)
}

/// squeue's format pairing each job's id with the id sacct shows for it: `4_1` for task 1
/// of array job 4, whose own id is another number. Neither field is free text.
pub const SHOWN_IDS_FORMAT: &str = "%A|%i";

/// Parses squeue's [`SHOWN_IDS_FORMAT`] answer into job id -> the id sacct shows. A job
/// whose shown id is not `N` or `N_M` (a pending array's `4_[2-5]`) keeps its own id.
pub fn parse_shown_ids(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut shown = std::collections::BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (id, as_shown) = line.split_once('|').unwrap_or((line, line));
        anyhow::ensure!(digits(id), "squeue printed {line:?} where a job id belongs");
        let task = match as_shown.split_once('_') {
            Some((array, index)) => digits(array) && digits(index),
            None => digits(as_shown),
        };
        shown.insert(id.to_string(), if task { as_shown } else { id }.to_string());
    }
    Ok(shown)
}

/// Parses squeue's [`JOB_IDS_FORMAT`] answer: one job id a line.
pub fn parse_job_ids(text: &str) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        anyhow::ensure!(
            line.bytes().all(|b| b.is_ascii_digit()),
            "squeue printed {line:?} where a job id belongs"
        );
        ids.insert(line.to_string());
    }
    Ok(ids)
}

/// squeue's format pairing each job with the nodes it holds: neither field is free text,
/// so no line of its answer can be forged.
pub const JOB_NODES_FORMAT: &str = "%A|%N";

/// Parses squeue's [`JOB_NODES_FORMAT`] answer into job id -> node names.
pub fn parse_job_nodes(text: &str) -> Result<std::collections::BTreeMap<String, BTreeSet<String>>> {
    let mut jobs = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (id, list) = line.split_once('|').unwrap_or((line, ""));
        anyhow::ensure!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "squeue printed {line:?} where a job id belongs"
        );
        let nodes = jobs.entry(id.to_string()).or_default();
        if !list.is_empty() && list != "(null)" {
            hostlist::expand(list, |n| {
                nodes.insert(n.to_string());
            })
            .map_err(|e| anyhow::anyhow!("squeue: {e}"))?;
        }
    }
    Ok(jobs)
}

/// The job states in which a job holds its node (and, on the node, is in the ledger).
pub const NODE_STATES: &str = "CONFIGURING,RUNNING,SUSPENDED";

/// Node names that run a job, from `squeue -o %N` (one hostlist per line).
pub fn parse_busy_nodes(text: &str) -> Result<BTreeSet<String>> {
    let mut busy = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        hostlist::expand(line, |n| {
            busy.insert(n.to_string());
        })
        .map_err(|e| anyhow::anyhow!("squeue: {e}"))?;
    }
    Ok(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_tasks_are_known_by_the_id_sacct_shows() {
        let shown = parse_shown_ids("7|7\n12|4_1\n13|4_[2-5]\n").unwrap();
        assert_eq!(shown["7"], "7");
        assert_eq!(shown["12"], "4_1");
        assert_eq!(shown["13"], "13");
        assert!(parse_shown_ids("x|4_1\n").is_err());
    }

    #[test]
    fn squeue_is_asked_for_the_comment_only_when_it_is_the_project() {
        assert_eq!(node_jobs_format(ProjectSource::Comment), "%A|%u|%P|%a|%k");
        assert_eq!(node_jobs_format(ProjectSource::Wckey), "%A|%u|%P|%a|%w");
        assert_eq!(node_jobs_format(ProjectSource::Account), "%A|%u|%P|%a");
    }

    #[test]
    fn squeue_lines_keep_pipes_and_newlines_in_the_last_field() {
        let text = "12|alice|compute|acct|ProjectA\n13|bob|gpu|(null)|a|b\n14|carol|compute|(null)|line1\nline2\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "c1").unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].project, "ProjectA");
        assert_eq!((jobs[0].account.as_str(), jobs[0].cluster.as_str()), ("acct", "c1"));
        assert_eq!(jobs[1].project, "a|b");
        assert_eq!(jobs[1].account, "");
        assert_eq!(jobs[2].project, "line1\nline2");
        let by_wckey = parse_node_jobs(
            "12|alice|compute|acct|*wk\n13|bob|gpu|a|(null)\n",
            ProjectSource::Wckey,
            "",
        )
        .unwrap();
        assert_eq!((by_wckey[0].project.as_str(), by_wckey[1].project.as_str()), ("wk", ""));
        let by_account =
            parse_node_jobs("12|alice|compute|acct\n13|bob|gpu|(null)\n", ProjectSource::Account, "").unwrap();
        assert_eq!(
            (by_account[0].project.as_str(), by_account[0].account.as_str()),
            ("acct", "acct")
        );
        assert_eq!(by_account[1].project, "");
        assert!(parse_node_jobs("", ProjectSource::Comment, "").unwrap().is_empty());
        assert!(parse_node_jobs("garbage\n", ProjectSource::Comment, "").is_err());
    }

    #[test]
    fn a_forged_job_line_is_refused_by_the_id_list() {
        // Job 12's comment is "x\n9999999|victim|compute|physics|VictimProject".
        let text = "12|mallory|compute|physics|x\n9999999|victim|compute|physics|VictimProject\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "").unwrap();
        assert_eq!(jobs.len(), 2, "it looks like a job line");
        let e = confirm_jobs(jobs, "12\n").unwrap_err().to_string();
        assert!(e.contains("job 9999999") && e.contains("forged"), "{e}");
        // Naming a job that really runs here: printed twice.
        let text = "12|mallory|compute|physics|x\n13|victim|compute|physics|MalloryProject\n13|victim|compute|physics|VictimProject\n";
        let jobs = parse_node_jobs(text, ProjectSource::Comment, "").unwrap();
        let e = confirm_jobs(jobs, "12\n13\n").unwrap_err().to_string();
        assert!(e.contains("job 13 twice"), "{e}");
        // Agreeing answers, and a job that started between the two queries.
        let jobs = parse_node_jobs("12|alice|compute|physics|P\n", ProjectSource::Comment, "").unwrap();
        assert_eq!(confirm_jobs(jobs, "12\n14\n").unwrap().len(), 1);
        assert!(parse_job_ids("12\nx|y\n").is_err());
    }

    #[test]
    fn jobs_and_their_nodes() {
        let jobs = parse_job_nodes("5|q-dy-c5-[1,3-4]\n6|q-dy-c5-1\n7|\n").unwrap();
        assert_eq!(jobs["5"].len(), 3);
        assert!(jobs["6"].contains("q-dy-c5-1"));
        assert!(jobs["7"].is_empty(), "a configuring job may have no node yet");
        assert!(parse_job_nodes("x|n1\n").is_err());
        assert!(parse_job_nodes("5|q-[1-\n").is_err());
    }

    #[test]
    fn busy_nodes_are_expanded_from_hostlists() {
        let busy = parse_busy_nodes("q-dy-c5-[1-3,7]\n\nn1,n2\n").unwrap();
        assert_eq!(busy.len(), 6);
        assert!(busy.contains("q-dy-c5-7") && busy.contains("n2"));
        assert!(parse_busy_nodes("q-[1-\n").is_err());
    }
}
