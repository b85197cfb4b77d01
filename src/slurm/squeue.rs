//! What cost-tags asks squeue, and how its answers are read: the jobs on one node (with
//! the project's field only when it is the project, last; see [`crate::slurm::fields`]),
//! their ids alone (which nothing a user writes can forge), and the nodes that run jobs.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::model::job::Job;
use crate::model::job::ProjectSource;
use crate::slurm::fields::{self, ProjectField};
use crate::slurm::hostlist;
use crate::slurm::job_request::{self, BadField, JobRequest, TimeLimit};

/// squeue's format for one node's jobs under `source`: job id, user, partition, account,
/// then the project's own field when it is not the account. The comment is asked for
/// only when it is the project, and last (see [`crate::slurm::fields`]).
pub(crate) fn node_jobs_format(source: ProjectSource) -> String {
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
pub(crate) const JOB_IDS_FORMAT: &str = "%A";

/// Parses squeue's [`node_jobs_format`] lines into jobs. A line that is not a job line
/// continues the previous job's last field (Slurm prints a newline in free text raw).
/// A line that looks like a job line may still be such a continuation, forged: the
/// caller confirms the jobs with [`confirm_jobs`].
pub(crate) fn parse_node_jobs(text: &str, source: ProjectSource, cluster: &str) -> Result<Vec<Job>> {
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
/// then agrees (see [`confirm_listed`] for callers to whom a gone job is no failure). A
/// job listed only in `ids` started meanwhile; its prolog records it.
pub(crate) fn confirm_jobs(jobs: Vec<Job>, ids: &str) -> Result<Vec<Job>> {
    let (jobs, gone) = confirm_listed(jobs, ids)?;
    if let Some(job) = gone.first() {
        anyhow::bail!(
            "squeue printed job {} (user {:?}), which `squeue -o {JOB_IDS_FORMAT}` does not list: a newline \
             in another job's free text (its comment) forged that line, or the job ended meanwhile",
            job.id,
            job.user
        );
    }
    Ok(jobs)
}

/// Splits `jobs` into those `ids` (asked after) confirms and those it does not list: a job
/// that ended between the two queries, or a line forged with an id no job has. Either way
/// that job is not running now, so counting it as gone is right; only a job printed twice
/// (a forged line naming a real job) is an error, since which line is real cannot be told.
pub(crate) fn confirm_listed(jobs: Vec<Job>, ids: &str) -> Result<(Vec<Job>, Vec<Job>)> {
    let listed = parse_job_ids(ids)?;
    let mut seen = BTreeSet::new();
    for job in &jobs {
        anyhow::ensure!(
            seen.insert(job.id.as_str()),
            "squeue printed job {} twice: a newline in a job's free text (its comment) forged a line",
            job.id
        );
    }
    Ok(jobs.into_iter().partition(|j| listed.contains(&j.id)))
}

/// squeue's format pairing each job's id with the id sacct shows for it: `4_1` for task 1
/// of array job 4, whose own id is another number. Neither field is free text.
pub(crate) const SHOWN_IDS_FORMAT: &str = "%A|%i";

/// Parses squeue's [`SHOWN_IDS_FORMAT`] answer into job id -> the id sacct shows. A job
/// whose shown id is not `N` or `N_M` (a pending array's `4_[2-5]`) keeps its own id.
pub(crate) fn parse_shown_ids(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
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
pub(crate) fn parse_job_ids(text: &str) -> Result<BTreeSet<String>> {
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

/// squeue's `-O` fields for a pending job's size (see [`parse_pending_jobs`]), none of
/// them free text: job id, array task expression, partitions (every one a pending job
/// lists, comma-separated), min and max nodes, CPUs, tasks, CPUs per task, tasks per node,
/// time limit, OverSubscribe, GPUs per job, node and task. `:|` prints a field unpadded
/// and uncut, followed by `|`.
const PENDING_FIELDS: [&str; 14] = [
    "JobID",
    "ArrayTaskID",
    "Partition",
    "NumNodes",
    "MaxNodes",
    "NumCPUs",
    "NumTasks",
    "cpus-per-task",
    "NTPerNode",
    "TimeLimit",
    "OverSubscribe",
    "tres-per-job",
    "tres-per-node",
    "tres-per-task",
];

/// `squeue -O` for pending jobs under `source`: `PENDING_FIELDS`, then the project's
/// field last (the account, or the comment or wckey), unpadded and uncut (`:0`).
pub(crate) fn pending_jobs_format(source: ProjectSource) -> String {
    let project = match ProjectField::of(source) {
        Some(ProjectField::Comment) => "Comment",
        Some(ProjectField::Wckey) => "WCKey",
        None => "Account",
    };
    let mut format: String = PENDING_FIELDS.iter().map(|f| format!("{f}:|,")).collect();
    format.push_str(project);
    format.push_str(":0");
    format
}

/// A pending job of a project, sized as Slurm holds its request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingJob {
    pub id: String,
    pub project: String,
    pub request: JobRequest,
}

/// Parses squeue's [`pending_jobs_format`] answer, confirmed by `ids` (squeue's
/// [`JOB_IDS_FORMAT`] answer for pending jobs, asked after). Lines are told apart as in
/// [`parse_node_jobs`]; a line naming a job `ids` lacks is dropped before its fields are
/// read (it started or ended meanwhile, or was forged: either way it is not pending), and
/// a job printed twice is an error. A confirmed job whose fields are not what squeue
/// prints is an error too: counting it as nothing would loosen the budget.
pub(crate) fn parse_pending_jobs(text: &str, source: ProjectSource, ids: &str) -> Result<Vec<PendingJob>> {
    let count = PENDING_FIELDS.len() + 1;
    let mut lines: Vec<(Vec<&str>, String)> = Vec::new();
    for line in text.lines() {
        let fields =
            fields::split(line, count, true).filter(|f| !f[0].is_empty() && f[0].bytes().all(|b| b.is_ascii_digit()));
        let Some(mut fields) = fields else {
            match lines.last_mut() {
                Some((_, last)) => {
                    last.push('\n');
                    last.push_str(line);
                    continue;
                }
                None if line.trim().is_empty() => continue,
                None => anyhow::bail!("squeue printed an unexpected line: {line:?}"),
            }
        };
        let last = fields.pop().unwrap_or_default().to_string();
        lines.push((fields, last));
    }
    let listed = parse_job_ids(ids)?;
    let mut seen = BTreeSet::new();
    let mut jobs = Vec::new();
    for (fields, last) in lines {
        let id = fields[0];
        anyhow::ensure!(
            seen.insert(id),
            "squeue printed pending job {id} twice: a newline in a job's free text (its comment) forged a line"
        );
        if !listed.contains(id) {
            continue;
        }
        let request = pending_request(&fields).map_err(|e| anyhow::anyhow!("squeue, pending job {id}: {e}"))?;
        let project = match (last.as_str(), ProjectField::of(source)) {
            ("(null)", _) => String::new(),
            // A default wckey is printed with a leading `*`.
            (wckey, Some(ProjectField::Wckey)) => wckey.trim_start_matches('*').to_string(),
            (other, _) => other.to_string(),
        };
        jobs.push(PendingJob {
            id: id.to_string(),
            project,
            request,
        });
    }
    Ok(jobs)
}

/// squeue's format pairing each job with the nodes it holds: neither field is free text,
/// so no line of its answer can be forged.
pub(crate) const JOB_NODES_FORMAT: &str = "%A|%N";

/// Parses squeue's [`JOB_NODES_FORMAT`] answer into job id -> node names.
pub(crate) fn parse_job_nodes(text: &str) -> Result<std::collections::BTreeMap<String, BTreeSet<String>>> {
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

/// The request of one pending job from its [`PENDING_FIELDS`] (the project's left out).
fn pending_request(f: &[&str]) -> Result<JobRequest, BadField> {
    // squeue prints N/A for a field the job did not set, and 0 for an unset node maximum
    // or tasks per node.
    let count = |field: &'static str, raw: &str| -> Result<Option<u32>, BadField> {
        match raw.trim() {
            "N/A" | "(null)" | "" => Ok(None),
            n => n.parse::<u32>().map(Some).map_err(|_| BadField {
                field,
                why: format!("is not a count ({n:?})"),
            }),
        }
    };
    let positive = |field, raw| Ok(count(field, raw)?.filter(|&n| n > 0));
    let gpus = |field, raw: &str| match raw.trim() {
        "N/A" | "(null)" => Ok(None),
        tres => job_request::gpus_in_tres(field, tres),
    };
    Ok(JobRequest {
        partitions: f[2].split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        time_limit: squeue_time_limit(f[9])?,
        min_nodes: positive("NumNodes", f[3])?,
        max_nodes: positive("MaxNodes", f[4])?,
        num_tasks: positive("NumTasks", f[6])?,
        cpus_per_task: positive("cpus-per-task", f[7])?,
        ntasks_per_node: positive("NTPerNode", f[8])?,
        min_cpus: positive("NumCPUs", f[5])?,
        // NO: the job asked for whole nodes. USER and MCS give its nodes to one user or
        // security class: at worst the job holds them whole too.
        exclusive: matches!(f[10].trim(), "NO" | "USER" | "MCS"),
        array_tasks: match f[1].trim() {
            "N/A" | "(null)" => 1,
            tasks => job_request::array_task_count(tasks)?,
        },
        gpus_per_job: gpus("tres-per-job", f[11])?,
        gpus_per_node: gpus("tres-per-node", f[12])?,
        gpus_per_task: gpus("tres-per-task", f[13])?,
    })
}

/// A time limit as squeue prints it: `UNLIMITED`, `NOT_SET`, or `[D-]H:MM:SS` (also
/// `M:SS` and bare minutes, as Slurm reads durations), rounded up to whole minutes.
pub(crate) fn squeue_time_limit(text: &str) -> Result<TimeLimit, BadField> {
    let field = "TimeLimit";
    let bad = || BadField {
        field,
        why: format!("is not a duration ({:?})", text.trim()),
    };
    let text = text.trim();
    match text {
        "UNLIMITED" | "INFINITE" => return Ok(TimeLimit::Unlimited),
        "NOT_SET" | "N/A" => return Ok(TimeLimit::Unset),
        _ => {}
    }
    let number = |s: &str| -> Result<u64, BadField> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (number(d)?, rest),
        None => (0, text),
    };
    let parts = clock.split(':').map(number).collect::<Result<Vec<u64>, _>>()?;
    let (hours, minutes, seconds) = match (parts.as_slice(), days > 0 || text.contains('-')) {
        // `D-H`, `D-H:M`, `D-H:M:S`.
        ([h], true) => (*h, 0, 0),
        ([h, m], true) => (*h, *m, 0),
        // `M`, `M:S`.
        ([m], false) => (0, *m, 0),
        ([m, s], false) => (0, *m, *s),
        ([h, m, s], _) => (*h, *m, *s),
        _ => return Err(bad()),
    };
    let total_seconds = ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
    Ok(TimeLimit::Minutes(total_seconds.div_ceil(60)))
}

/// The job states in which a job holds its node (and, on the node, is in the ledger).
pub(crate) const NODE_STATES: &str = "CONFIGURING,RUNNING,SUSPENDED";

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
    fn a_job_that_ended_between_the_two_queries_is_not_running() {
        // Job 13 ended after the first query: the id list no longer has it.
        let jobs = parse_node_jobs(
            "12|alice|compute|physics|P\n13|bob|compute|physics|Q\n",
            ProjectSource::Comment,
            "",
        )
        .unwrap();
        let (running, gone) = confirm_listed(jobs.clone(), "12\n").unwrap();
        assert_eq!(running.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["12"]);
        assert_eq!(gone[0].id, "13");
        // The strict form (node repair) still refuses to decide from it.
        assert!(confirm_jobs(jobs, "12\n").is_err());
        // A job printed twice is still an error.
        let twice = parse_node_jobs("12|a|c|p|P\n12|a|c|p|Q\n", ProjectSource::Comment, "").unwrap();
        assert!(confirm_listed(twice, "12\n").is_err());
    }

    #[test]
    fn pending_jobs_are_asked_for_their_size_and_the_project_last() {
        let f = pending_jobs_format(ProjectSource::Comment);
        assert!(f.starts_with("JobID:|,ArrayTaskID:|,Partition:|,"), "{f}");
        assert!(f.ends_with(",tres-per-task:|,Comment:0"), "{f}");
        assert!(pending_jobs_format(ProjectSource::Wckey).ends_with(",WCKey:0"));
        assert!(pending_jobs_format(ProjectSource::Account).ends_with(",Account:0"));
    }

    /// Slurm 22.05's answer for (1) `sbatch --hold -p compute,gpu -N 1-3 -t 90 --comment
    /// $'P|x\ny'`, (2) `-p compute --exclusive -n 5 -c 2 --ntasks-per-node=1 -t 1-02:03:04
    /// --array=0-9:2%2`, (3) `--time=UNLIMITED` with GPUs per node and task, (4) GPUs per
    /// job, the wckey's default mark.
    const PENDING: &str = "\
1|N/A|compute,gpu|1|3|1|1|1|0|1:30:00|OK|N/A|N/A|N/A|P|x
y
2|0,2,4,6,8%2|compute|5|5|10|5|2|1|1-02:04:00|NO|N/A|N/A|N/A|(null)
3|N/A|gpu|1|1|1|1|1|0|UNLIMITED|USER|N/A|gres:gpu:2|gres/gpu:a100:1|ProjectB
4|N/A|gpu|1|0|48|1|1|0|NOT_SET|OK|gres/gpu:8|N/A|N/A|*wk
";

    #[test]
    fn pending_jobs_are_parsed_field_by_field() {
        let jobs = parse_pending_jobs(PENDING, ProjectSource::Comment, "1\n2\n3\n4\n").unwrap();
        assert_eq!(jobs.len(), 4);
        let (one, two, three, four) = (&jobs[0], &jobs[1], &jobs[2], &jobs[3]);
        // The comment keeps its `|` and its newline.
        assert_eq!(one.project, "P|x\ny");
        assert_eq!(one.request.partitions, ["compute", "gpu"]);
        assert_eq!((one.request.min_nodes, one.request.max_nodes), (Some(1), Some(3)));
        // 1:30:00 = 90 min; NTPerNode 0 is unset.
        assert_eq!(one.request.time_limit, TimeLimit::Minutes(90));
        assert_eq!(one.request.ntasks_per_node, None);
        assert!(!one.request.exclusive);
        assert_eq!(one.request.array_tasks, 1);
        assert_eq!(two.project, "");
        // 0,2,4,6,8 (0-9:2): 5 tasks; %2 does not lower it.
        assert_eq!(two.request.array_tasks, 5);
        // 1 day + 2 h + 4 min = 1440 + 120 + 4 = 1564 min.
        assert_eq!(two.request.time_limit, TimeLimit::Minutes(1564));
        assert_eq!(
            (
                two.request.num_tasks,
                two.request.cpus_per_task,
                two.request.min_cpus,
                two.request.ntasks_per_node
            ),
            (Some(5), Some(2), Some(10), Some(1))
        );
        assert!(two.request.exclusive, "OverSubscribe NO is --exclusive");
        assert_eq!(three.request.time_limit, TimeLimit::Unlimited);
        assert!(three.request.exclusive, "USER: its nodes go to one user");
        assert_eq!(
            (three.request.gpus_per_node, three.request.gpus_per_task),
            (Some(2), Some(1))
        );
        assert_eq!(four.request.gpus_per_job, Some(8));
        assert_eq!(four.request.max_nodes, None, "MaxNodes 0 is unset");
        assert_eq!(four.request.time_limit, TimeLimit::Unset);
        assert_eq!(four.project, "*wk");
        let by_wckey = parse_pending_jobs(PENDING, ProjectSource::Wckey, "4\n").unwrap();
        assert_eq!(by_wckey.len(), 1);
        assert_eq!(by_wckey[0].project, "wk");
    }

    #[test]
    fn a_forged_pending_line_is_dropped_and_a_bad_field_refused() {
        // Job 1's comment is "x\n9999999|N/A|compute|500|500|...|VictimProject".
        let text = "1|N/A|compute|1|1|1|1|1|0|1:00:00|OK|N/A|N/A|N/A|x\n\
                    9999999|N/A|compute|500|500|1000|500|2|0|99-00:00:00|NO|N/A|N/A|N/A|VictimProject\n";
        let jobs = parse_pending_jobs(text, ProjectSource::Comment, "1\n").unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].id, "1");
        // Naming a real pending job: printed twice.
        let e = parse_pending_jobs(text, ProjectSource::Comment, "1\n9999999\n");
        assert!(e.is_ok(), "a real job with that id and no second line is just that job");
        let twice = format!("{text}9999999|N/A|compute|1|1|1|1|1|0|1:00:00|OK|N/A|N/A|N/A|Q\n");
        let e = parse_pending_jobs(&twice, ProjectSource::Comment, "1\n9999999\n").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        // A confirmed job whose fields are not squeue's: refused, not counted as nothing.
        let bad = "5|N/A|compute|x|1|1|1|1|0|1:00:00|OK|N/A|N/A|N/A|P\n";
        let e = parse_pending_jobs(bad, ProjectSource::Comment, "5\n").unwrap_err();
        assert!(e.to_string().contains("NumNodes"), "{e}");
        assert!(parse_pending_jobs("", ProjectSource::Comment, "").unwrap().is_empty());
    }

    #[test]
    fn time_limits_as_squeue_prints_them() {
        assert_eq!(squeue_time_limit("UNLIMITED"), Ok(TimeLimit::Unlimited));
        assert_eq!(squeue_time_limit("NOT_SET"), Ok(TimeLimit::Unset));
        // 1:00:00 = 60 min.
        assert_eq!(squeue_time_limit("1:00:00"), Ok(TimeLimit::Minutes(60)));
        // 1 day = 1440 min.
        assert_eq!(squeue_time_limit("1-00:00:00"), Ok(TimeLimit::Minutes(1440)));
        // 2 days + 3 h = 2 x 1440 + 180 = 3060 min.
        assert_eq!(squeue_time_limit("2-03"), Ok(TimeLimit::Minutes(3060)));
        // 10:30 is 10 min 30 s: rounded up to 11.
        assert_eq!(squeue_time_limit("10:30"), Ok(TimeLimit::Minutes(11)));
        assert_eq!(squeue_time_limit("0:00:01"), Ok(TimeLimit::Minutes(1)));
        assert_eq!(squeue_time_limit("45"), Ok(TimeLimit::Minutes(45)));
        for bad in ["", "INVALID", "1:2:3:4", "-1:00:00", "a:00", "1-", "99999999999:00:00"] {
            assert!(squeue_time_limit(bad).is_err(), "{bad}");
        }
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
}
