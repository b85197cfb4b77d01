//! Settings: one TOML file (`/opt/slurm/etc/cost-tags.toml` unless `--config PATH` or
//! `COST_TAGS_CONFIG` names another), every key with a built-in default. All binaries read
//! the same `Settings`, so a key means the same thing everywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::job::ProjectSource;
use crate::model::tag_set::{self, TagField};

/// Where the settings live when nobody says otherwise.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/opt/slurm/etc/cost-tags.toml";
/// The environment variable that names the settings file (weaker than `--config`).
pub(crate) const CONFIG_ENV: &str = "COST_TAGS_CONFIG";

/// Where the price cache is unless `[pricing] cache_file` says otherwise.
pub(crate) const DEFAULT_PRICE_CACHE: &str = "/var/spool/cost-tags/prices.json";

/// Everything cost-tags can be told. Unknown keys are rejected so a typo never silently
/// falls back to a default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The `user=ProjectA, ProjectB` file.
    pub projects_file: PathBuf,
    /// Which job field carries the project.
    pub project_source: ProjectSource,
    /// Users who may submit without a project (root, service accounts).
    pub exempt_users: Vec<String>,
    /// Where each node keeps its ledger of running jobs and what it owes AWS.
    pub state_dir: PathBuf,
    /// Where the instance id learned from IMDS is cached; must not survive a reboot.
    pub cache_dir: PathBuf,
    /// Upper bound for a whole prolog or epilog run, network included.
    #[serde(with = "seconds")]
    pub deadline: Duration,
    /// Turn AWS failures in the prolog/epilog into a non-zero exit (drains the node).
    pub strict: bool,
    /// Tag keys and how values of several jobs are joined.
    pub tags: TagSettings,
    /// Prices and node shapes for `cost-tags report`.
    pub pricing: PricingSettings,
    /// Refusing projects whose AWS Budget is spent.
    pub budget: BudgetSettings,
    /// Who writes the tags, and how fast the head node may call EC2.
    pub tagging: TaggingSettings,
    /// Which instance backed which Slurm node, and when (written by the head node).
    pub timeline: TimelineSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            projects_file: PathBuf::from("/opt/slurm/etc/projects_list.conf"),
            project_source: ProjectSource::Comment,
            exempt_users: vec!["root".to_string()],
            state_dir: PathBuf::from("/var/spool/cost-tags"),
            cache_dir: PathBuf::from("/run/cost-tags"),
            deadline: Duration::from_secs(10),
            strict: false,
            tags: TagSettings::default(),
            pricing: PricingSettings::default(),
            budget: BudgetSettings::default(),
            tagging: TaggingSettings::default(),
            timeline: TimelineSettings::default(),
        }
    }
}

/// The `[timeline]` table: the file in which each convergence of the head node
/// (`reconcile --cluster`) records which instance backed which Slurm node, and when, for
/// `cost-tags job` and a per-job join with the AWS bill (which names instances, not
/// nodes). See `cluster::timeline`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimelineSettings {
    /// Unset: `timeline.jsonl` in `state_dir` (`/var/spool/cost-tags/timeline.jsonl`),
    /// so that it moves with the other state files; "": no timeline.
    pub file: Option<PathBuf>,
    /// An interval last seen longer ago than this is dropped when the file is rewritten.
    /// The default keeps a year of bills and a month to reconcile them.
    pub retention_days: u32,
    /// A pass that only moves `last_seen` forward (nothing opened, closed or dropped)
    /// rewrites the file at most this often, in seconds; a change is written at once.
    /// A `--follow` woken every second on a large cluster would otherwise rewrite the
    /// whole file every second. After a crash `last_seen` may lag by up to this much.
    pub rewrite_seconds: u32,
}

impl Default for TimelineSettings {
    fn default() -> Self {
        TimelineSettings {
            file: None,
            retention_days: 400,
            rewrite_seconds: 300,
        }
    }
}

impl TimelineSettings {
    fn validate(&self) -> Result<(), String> {
        if self.retention_days == 0 || self.retention_days > 36_500 {
            return Err(format!(
                "timeline.retention_days {} must be from 1 to 36500",
                self.retention_days
            ));
        }
        Ok(())
    }
}

/// Who writes the instances' cost tags.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TaggingMode {
    /// Each compute node's prolog and epilog tag its own instance (the first design, and
    /// the default for existing installs).
    #[default]
    Node,
    /// Only the head node tags (`cost-tags reconcile --cluster`): compute nodes make no
    /// AWS call, so a job user holding the compute role's credentials cannot forge tags.
    Controller,
}

/// The `[tagging]` table. The head node's EC2 tag calls have a budget of their own, well
/// under EC2's per-account bucket for CreateTags and DeleteTags (100 calls, refilled 10
/// a second), so that the convergence never empties it for everyone else in the account.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TaggingSettings {
    pub mode: TaggingMode,
    /// The head node's EC2 calls, at most this many a second on average.
    pub calls_per_second: f64,
    /// ...and at most this many at once after a quiet spell.
    pub burst: u32,
    /// `reconcile --cluster --follow` passes at least this often when nothing wakes it
    /// (a job that started or ended without a PrologSlurmctld/EpilogSlurmctld wake-up, a
    /// node whose instance appeared). Each pass costs slurmctld one `scontrol show nodes`
    /// and two `squeue`, plus one `squeue` per tag call.
    pub poll_seconds: u64,
}

impl Default for TaggingSettings {
    fn default() -> Self {
        TaggingSettings {
            mode: TaggingMode::Node,
            calls_per_second: 5.0,
            burst: 20,
            poll_seconds: 30,
        }
    }
}

impl TaggingSettings {
    fn validate(&self) -> Result<(), String> {
        if !(self.calls_per_second.is_finite() && self.calls_per_second > 0.0 && self.calls_per_second <= 100.0) {
            return Err(format!(
                "tagging.calls_per_second {} must be more than 0 and at most 100",
                self.calls_per_second
            ));
        }
        if self.burst == 0 || self.burst > 100 {
            return Err(format!("tagging.burst {} must be from 1 to 100", self.burst));
        }
        if self.poll_seconds == 0 || self.poll_seconds > 3600 {
            return Err(format!(
                "tagging.poll_seconds {} must be from 1 to 3600",
                self.poll_seconds
            ));
        }
        Ok(())
    }
}

/// The `[tags]` table: the key used for each job attribute, an empty string switching
/// that key off.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TagSettings {
    pub project: String,
    pub user: String,
    pub job_id: String,
    pub partition: String,
    pub account: String,
    pub cluster: String,
    /// Joins the values of several jobs sharing a node.
    pub separator: String,
}

impl Default for TagSettings {
    fn default() -> Self {
        // The keys of the public ParallelCluster scripts, so existing Cost Explorer
        // reports keep working.
        TagSettings {
            project: "aws-parallelcluster-project".into(),
            user: "aws-parallelcluster-username".into(),
            job_id: "aws-parallelcluster-jobid".into(),
            partition: String::new(),
            account: String::new(),
            cluster: String::new(),
            separator: " ".into(),
        }
    }
}

/// The `[pricing]` table: what a node-hour costs, for `cost-tags report`. A node's
/// instance type comes from the first `nodes` pattern its name matches, else from its
/// partition; whether it runs as spot is a property of its partition.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PricingSettings {
    /// Printed beside every amount; prices are taken as they are written.
    pub currency: String,
    /// Instance type (`c5.xlarge`) -> prices and shape.
    pub instances: BTreeMap<String, InstancePricing>,
    /// Partition name -> instance type of its nodes and whether they are spot.
    pub partitions: BTreeMap<String, PartitionPricing>,
    /// Node-name globs (`*`, `?`) -> instance type, checked in order before partitions.
    pub nodes: Vec<NodePricing>,
    /// ParallelCluster's fleet configuration, for node instance types and spot queues;
    /// unset: `/etc/parallelcluster/slurm_plugin/fleet-config.json` when it exists; "": off.
    pub fleet_config: Option<PathBuf>,
    /// The price cache `cost-tags prices refresh` writes; unset:
    /// `/var/spool/cost-tags/prices.json` (read when it exists); "": off.
    pub cache_file: Option<PathBuf>,
    /// Other clusters sharing this slurmdbd (`report --clusters`): each one's node shapes.
    /// Prices (`instances`, the cache) are shared; a cluster not named here is priced
    /// with the settings above.
    pub clusters: BTreeMap<String, ClusterPricing>,
}

/// `[pricing.clusters.NAME]`: how another cluster's nodes map to instance types.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterPricing {
    /// That cluster's fleet-config.json (copied from its head node); unset: none.
    pub fleet_config: Option<PathBuf>,
    pub partitions: BTreeMap<String, PartitionPricing>,
    pub nodes: Vec<NodePricing>,
}

impl Default for PricingSettings {
    fn default() -> Self {
        PricingSettings {
            currency: "USD".into(),
            instances: BTreeMap::new(),
            partitions: BTreeMap::new(),
            nodes: Vec::new(),
            fleet_config: None,
            cache_file: None,
            clusters: BTreeMap::new(),
        }
    }
}

/// `[pricing.instances."c5.xlarge"]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstancePricing {
    /// On-demand price per instance-hour.
    pub on_demand: f64,
    /// Spot price per instance-hour (needed when a spot partition uses this type).
    #[serde(default)]
    pub spot: Option<f64>,
    /// CPUs Slurm sees on such a node (vCPUs, or cores with multithreading off).
    pub cpus: u32,
    /// GPUs on such a node; when more than 0 a job pays the larger of its CPU and GPU share.
    #[serde(default)]
    pub gpus: u32,
}

/// `[pricing.partitions.NAME]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionPricing {
    /// Instance type of the partition's nodes (may be left to `nodes` patterns).
    pub instance: Option<String>,
    /// The partition's nodes are spot instances.
    pub spot: bool,
}

/// `[[pricing.nodes]]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodePricing {
    /// Node-name glob: `*` any characters, `?` one character.
    pub pattern: String,
    pub instance: String,
}

impl PricingSettings {
    /// The pricing of cluster `name`: these prices with its own partitions, node patterns
    /// and fleet file, or these settings as they are when it has no entry.
    pub fn for_cluster(&self, name: &str) -> PricingSettings {
        let Some(c) = self.clusters.get(name) else {
            return self.clone();
        };
        PricingSettings {
            partitions: c.partitions.clone(),
            nodes: c.nodes.clone(),
            fleet_config: Some(c.fleet_config.clone().unwrap_or_default()),
            clusters: BTreeMap::new(),
            ..self.clone()
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.currency.trim().is_empty() {
            return Err("pricing.currency must not be empty".into());
        }
        for (name, i) in &self.instances {
            let price_ok = |p: f64| p.is_finite() && p >= 0.0;
            if !price_ok(i.on_demand) || !i.spot.is_none_or(price_ok) {
                return Err(format!(
                    "pricing.instances.{name:?}: prices must be numbers of 0 or more"
                ));
            }
            if i.cpus == 0 {
                return Err(format!("pricing.instances.{name:?}: cpus must be at least 1"));
            }
        }
        for (n, p) in self.nodes.iter().enumerate() {
            if p.pattern.is_empty() {
                return Err(format!("pricing.nodes[{n}].pattern must not be empty"));
            }
        }
        for (name, c) in &self.clusters {
            if let Some((n, _)) = c.nodes.iter().enumerate().find(|(_, p)| p.pattern.is_empty()) {
                return Err(format!("pricing.clusters.{name}.nodes[{n}].pattern must not be empty"));
            }
        }
        Ok(())
    }

    /// The price cache to read: the one the settings name (an empty name switches it
    /// off), else the default one when it exists.
    pub fn cache_to_read(&self) -> Option<PathBuf> {
        match &self.cache_file {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_PRICE_CACHE)).filter(|p| p.exists()),
        }
    }

    /// Checks that every instance type the partitions and node patterns name has a price,
    /// once the price cache's types are added (`spot_known` says whether the cache has a
    /// spot history for a type). The message names the setting.
    pub fn check_references(&self, spot_known: impl Fn(&str) -> bool) -> Result<(), String> {
        let known = |field: String, instance: &str| {
            if self.instances.contains_key(instance) {
                Ok(())
            } else {
                Err(format!(
                    "{field}: instance type {instance:?} is not in [pricing.instances] nor in the price cache \
                     (run `cost-tags prices refresh`)"
                ))
            }
        };
        for (name, p) in &self.partitions {
            if let Some(instance) = &p.instance {
                known(format!("pricing.partitions.{name}.instance"), instance)?;
                if p.spot && self.instances[instance].spot.is_none() && !spot_known(instance) {
                    return Err(format!(
                        "pricing.partitions.{name}: spot partition, but pricing.instances.{instance:?} has no spot price \
                         and the price cache no spot history for it"
                    ));
                }
            }
        }
        for (n, p) in self.nodes.iter().enumerate() {
            known(format!("pricing.nodes[{n}] ({})", p.pattern), &p.instance)?;
        }
        Ok(())
    }
}

/// A settings file that could not be used, with the file named.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The `[budget]` table. project-check reads only `cache_file`, which `cost-tags budget
/// refresh` (root, on the head node, from a timer) writes: the submit path never waits on
/// AWS, and slurmctld's user needs no AWS credentials.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSettings {
    /// Refuse projects whose budget is spent (off by default).
    pub enabled: bool,
    /// The budget name of a project: `{project}` is replaced by the project name.
    pub name_template: String,
    /// The budgets as last read from AWS.
    pub cache_file: PathBuf,
    /// The reservation journal: the worst case of every submission accepted since the
    /// last refresh (`enforce = "committed"`; see `budget::reservations`). project-check
    /// (SlurmUser) appends to it, so it must be SlurmUser's, in a directory only root or
    /// SlurmUser can write (the README says how to create it).
    pub reservations_file: PathBuf,
    /// A cache older than this is stale (a refresh has been failing).
    #[serde(deserialize_with = "seconds::up_to_a_week", serialize_with = "seconds::serialize")]
    pub max_age: Duration,
    /// A project with no budget (in a fresh cache).
    pub on_missing: BudgetFallback,
    /// A stale, missing or unreadable cache.
    pub on_stale: BudgetFallback,
    /// A budget is spent when its actual spend reaches this percentage of its limit.
    pub threshold_percent: f64,
    /// The AWS account that holds the budgets; empty: the caller's (STS GetCallerIdentity).
    pub account_id: String,
    /// `spent`: refuse once what AWS says was spent reaches the threshold. `committed`:
    /// also count what accrued since, what running jobs may still cost, and this job's
    /// worst case. Unset: `committed` when the cache knows the partitions' prices.
    pub enforce: Option<Enforce>,
    /// Limits per project without AWS Budgets (`ProjectA = 500`): spend is what Slurm
    /// accounting says, over `period`. When set, AWS Budgets is not read.
    pub limits: BTreeMap<String, f64>,
    /// The period of `limits`.
    pub period: LimitPeriod,
    /// On acceptance, tell the submitter what the job may cost and what is left.
    pub tell_users: bool,
}

/// How a budget is enforced at submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforce {
    Spent,
    Committed,
}

/// The period of `[budget.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitPeriod {
    #[default]
    Month,
    Quarter,
    Year,
}

impl LimitPeriod {
    /// How many months the period has.
    pub fn months(self) -> u32 {
        match self {
            LimitPeriod::Month => 1,
            LimitPeriod::Quarter => 3,
            LimitPeriod::Year => 12,
        }
    }

    /// AWS's name for the period, as the budget cache records it.
    pub fn aws_name(self) -> &'static str {
        match self {
            LimitPeriod::Month => "MONTHLY",
            LimitPeriod::Quarter => "QUARTERLY",
            LimitPeriod::Year => "ANNUALLY",
        }
    }
}

/// What to do when the budget cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetFallback {
    Allow,
    Deny,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            enabled: false,
            name_template: "{project}".into(),
            cache_file: PathBuf::from("/var/spool/cost-tags/budgets.jsonl"),
            reservations_file: PathBuf::from("/var/spool/cost-tags/reservations.jsonl"),
            max_age: Duration::from_secs(30 * 60),
            on_missing: BudgetFallback::Deny,
            on_stale: BudgetFallback::Allow,
            threshold_percent: 100.0,
            account_id: String::new(),
            enforce: None,
            limits: BTreeMap::new(),
            period: LimitPeriod::Month,
            tell_users: true,
        }
    }
}

impl BudgetSettings {
    /// The name of `project`'s budget.
    pub fn budget_name(&self, project: &str) -> String {
        self.name_template.replace("{project}", project)
    }

    /// The project a budget name belongs to, when the name follows the template.
    pub fn project_of<'a>(&self, budget_name: &'a str) -> Option<&'a str> {
        let (prefix, suffix) = self.name_template.split_once("{project}")?;
        budget_name
            .strip_prefix(prefix)?
            .strip_suffix(suffix)
            .filter(|p| !p.is_empty())
    }

    fn validate(&self) -> Result<(), String> {
        if self.name_template.matches("{project}").count() != 1 {
            return Err(format!(
                "budget.name_template {:?} must contain {{project}} exactly once",
                self.name_template
            ));
        }
        if self.name_template.contains([':', '\\']) {
            return Err(format!(
                "budget.name_template {:?}: AWS Budget names cannot contain ':' or '\\'",
                self.name_template
            ));
        }
        if !(self.threshold_percent.is_finite() && self.threshold_percent > 0.0 && self.threshold_percent <= 1000.0) {
            return Err(format!(
                "budget.threshold_percent {} must be more than 0 and at most 1000",
                self.threshold_percent
            ));
        }
        if self.max_age.is_zero() {
            return Err("budget.max_age must be more than 0 seconds".into());
        }
        let twelve_digits = self.account_id.len() == 12 && self.account_id.bytes().all(|b| b.is_ascii_digit());
        if !self.account_id.is_empty() && !twelve_digits {
            return Err(format!("budget.account_id {:?} must be 12 digits", self.account_id));
        }
        for (project, limit) in &self.limits {
            crate::model::project_name::validate(project).map_err(|e| format!("budget.limits: {e}"))?;
            if !(limit.is_finite() && *limit > 0.0) {
                return Err(format!("budget.limits.{project}: the limit must be a number above 0"));
            }
        }
        Ok(())
    }
}

impl Settings {
    /// The instance timeline's file ([`TimelineSettings::file`]), `None` when switched off.
    pub fn timeline_file(&self) -> Option<PathBuf> {
        match &self.timeline.file {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(self.state_dir.join("timeline.jsonl")),
        }
    }

    /// Loads the settings: `explicit` (from `--config`) wins over `COST_TAGS_CONFIG`, which
    /// wins over the default path. A file that was named but is missing is an error; a
    /// missing default file means built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
        let from_env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty());
        let (path, named) = match (explicit, from_env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Settings::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(Settings::default()),
            Err(e) => Err(ConfigError {
                path,
                reason: format!("cannot read settings: {e}"),
            }),
        }
    }

    /// Parses settings text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let settings: Settings = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            reason: one_line(&e.to_string()),
        })?;
        settings.validate().map_err(|reason| ConfigError {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(settings)
    }

    /// The settings as the text of a settings file, which [`Settings::parse`] reads back
    /// as the same value: the installer writes cost-tags.toml with it, so the file it
    /// writes and the type that reads it cannot drift apart. Every top-level key and
    /// `[tags]` are written out (what an administrator edits first); in the other tables
    /// only what differs from the built-in default, so a file stays short.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let defaults = toml::Table::try_from(Settings::default())?;
        let mut table = toml::Table::try_from(self)?;
        for key in ["pricing", "budget", "tagging", "timeline"] {
            let (Some(toml::Value::Table(ours)), Some(toml::Value::Table(default))) =
                (table.get_mut(key), defaults.get(key))
            else {
                continue;
            };
            ours.retain(|k, v| default.get(k) != Some(v));
            if ours.is_empty() {
                table.remove(key);
            }
        }
        toml::to_string(&table)
    }

    fn validate(&self) -> Result<(), String> {
        if self.deadline.is_zero() {
            return Err("deadline must be more than 0 seconds".into());
        }
        let mut seen = BTreeMap::new();
        for (field, key) in self.tags.named_keys() {
            let field = field.name();
            tag_set::validate_key(key).map_err(|why| format!("tags.{field}: {why}"))?;
            if let Some(other) = seen.insert(key, field) {
                return Err(format!("tags.{field} and tags.{other} both use the key {key:?}"));
            }
        }
        if self.tags.separator.is_empty() || !tag_set::is_value_text(&self.tags.separator) {
            return Err(format!(
                "tags.separator {:?} must be non-empty and use only characters valid in EC2 tag values",
                self.tags.separator
            ));
        }
        self.pricing.validate()?;
        self.tagging.validate()?;
        self.timeline.validate()?;
        self.budget.validate()
    }
}

impl TagSettings {
    /// The keys switched on, with the setting name each comes from.
    pub fn named_keys(&self) -> impl Iterator<Item = (TagField, &str)> {
        [
            (TagField::Project, self.project.as_str()),
            (TagField::User, self.user.as_str()),
            (TagField::JobId, self.job_id.as_str()),
            (TagField::Partition, self.partition.as_str()),
            (TagField::Account, self.account.as_str()),
            (TagField::Cluster, self.cluster.as_str()),
        ]
        .into_iter()
        .filter(|(_, key)| !key.is_empty())
    }
}

/// toml's messages span several lines with a source excerpt; logs and Slurm's one-line
/// user messages want one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Durations are written as whole or fractional seconds (`deadline = 10`).
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Whole seconds as an integer (`deadline = 10`), others as a float.
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        up_to(d, 3600.0)
    }

    pub(super) fn up_to_a_week<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        up_to(d, 7.0 * 86400.0)
    }

    fn up_to<'de, D: Deserializer<'de>>(d: D, max: f64) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(secs.is_finite() && (0.0..=max).contains(&secs)) {
            return Err(serde::de::Error::custom(format!(
                "expected a number of seconds between 0 and {max}"
            )));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_source_is_named_as_the_settings_file_names_it() {
        for source in [ProjectSource::Comment, ProjectSource::Account, ProjectSource::Wckey] {
            let text = format!("project_source = \"{}\"\n", source.name());
            assert_eq!(parse(&text).unwrap().project_source, source);
            assert_eq!(source.flag(), format!("--{}", source.name()));
        }
    }

    #[test]
    fn written_settings_read_back_as_the_same_settings() {
        let mut s = Settings::default();
        assert_eq!(parse(&s.to_toml().unwrap()).unwrap(), s);
        assert!(!s.to_toml().unwrap().contains("[budget]"), "defaults are not written");
        s.projects_file = PathBuf::from("/x/\"quoted\" projects");
        s.project_source = ProjectSource::Wckey;
        s.strict = true;
        s.deadline = Duration::from_millis(2500);
        s.tags.partition = "aws-parallelcluster-partition".into();
        s.budget.enabled = true;
        s.budget.limits.insert("ProjectA".into(), 500.0);
        s.pricing.nodes.push(NodePricing {
            pattern: "q1-*".into(),
            instance: "c5.xlarge".into(),
        });
        let text = s.to_toml().unwrap();
        assert_eq!(parse(&text).unwrap(), s, "{text}");
        assert!(text.contains("[budget]\nenabled = true\n"), "{text}");
        assert!(!text.contains("name_template"), "only what differs: {text}");
        assert!(text.contains("deadline = 2.5"), "{text}");
    }

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.projects_file, PathBuf::from("/opt/slurm/etc/projects_list.conf"));
        assert_eq!(s.project_source, ProjectSource::Comment);
        assert_eq!(s.exempt_users, vec!["root"]);
        assert_eq!(s.deadline, Duration::from_secs(10));
        assert_eq!(s.tags.project, "aws-parallelcluster-project");
    }

    #[test]
    fn keys_are_read() {
        let s = parse(
            "projects_file = \"/p\"\nproject_source = \"wckey\"\nexempt_users = [\"root\", \"svc\"]\ndeadline = 2.5\n[tags]\npartition = \"aws-parallelcluster-partition\"\nuser = \"\"\n",
        )
        .unwrap();
        assert_eq!(s.projects_file, PathBuf::from("/p"));
        assert_eq!(s.project_source, ProjectSource::Wckey);
        assert_eq!(s.exempt_users, vec!["root", "svc"]);
        assert_eq!(s.deadline, Duration::from_millis(2500));
        let keys: Vec<_> = s.tags.named_keys().map(|(f, _)| f).collect();
        assert_eq!(keys, vec![TagField::Project, TagField::JobId, TagField::Partition]);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = parse("projects_fil = \"/p\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/x.toml: "), "{e}");
        assert!(e.contains("projects_fil"), "{e}");
        let e = parse("[tags]\nprojet = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("projet"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let e = parse("project_source = \"email\"\n").unwrap_err().to_string();
        assert!(e.contains("email"), "{e}");
        assert!(parse("deadline = 0\n").is_err());
        assert!(parse("deadline = -1\n").is_err());
        let e = parse("[tags]\nproject = \"aws:project\"\n").unwrap_err().to_string();
        assert!(e.contains("tags.project"), "{e}");
        let e = parse("[tags]\nuser = \"aws-parallelcluster-project\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("both use"), "{e}");
    }

    const PRICING: &str = r#"
[pricing]
currency = "EUR"
[pricing.instances."c5.xlarge"]
on_demand = 0.17
spot = 0.07
cpus = 4
[pricing.instances."g4dn.xlarge"]
on_demand = 0.526
cpus = 4
gpus = 1
[pricing.partitions.compute]
instance = "c5.xlarge"
spot = true
[pricing.partitions.gpu]
instance = "g4dn.xlarge"
[[pricing.nodes]]
pattern = "gpu-*-g4-*"
instance = "g4dn.xlarge"
"#;

    #[test]
    fn pricing_is_read() {
        let p = parse("").unwrap().pricing;
        assert_eq!(p.currency, "USD");
        assert!(p.instances.is_empty() && p.partitions.is_empty() && p.nodes.is_empty());
        let p = parse(PRICING).unwrap().pricing;
        assert_eq!(p.currency, "EUR");
        let c5 = &p.instances["c5.xlarge"];
        assert_eq!((c5.on_demand, c5.spot, c5.cpus, c5.gpus), (0.17, Some(0.07), 4, 0));
        assert_eq!(p.instances["g4dn.xlarge"].gpus, 1);
        assert_eq!(p.partitions["compute"].instance.as_deref(), Some("c5.xlarge"));
        assert!(p.partitions["compute"].spot && !p.partitions["gpu"].spot);
        assert_eq!(p.nodes[0].pattern, "gpu-*-g4-*");
    }

    #[test]
    fn bad_pricing_is_refused() {
        let e = parse("[pricing]\ncurrencyy = \"USD\"\n").unwrap_err().to_string();
        assert!(e.contains("currencyy"), "{e}");
        // A type nobody prices is refused where prices are used (the report, once the
        // price cache's types are known), naming the setting; loading alone accepts it,
        // so a pricing typo never stops the submit filter or the hooks.
        let typo = parse(&PRICING.replace("instance = \"c5.xlarge\"", "instance = \"c5.xlarg\"")).unwrap();
        let e = typo.pricing.check_references(|_| false).unwrap_err();
        assert!(
            e.contains("pricing.partitions.compute.instance") && e.contains("c5.xlarg"),
            "{e}"
        );
        let no_spot = parse(&PRICING.replace("spot = 0.07\n", "")).unwrap().pricing;
        let e = no_spot.check_references(|_| false).unwrap_err();
        assert!(e.contains("no spot price"), "{e}");
        no_spot.check_references(|t| t == "c5.xlarge").unwrap();
        parse(PRICING).unwrap().pricing.check_references(|_| false).unwrap();
        assert!(parse(&PRICING.replace("on_demand = 0.17", "on_demand = -1")).is_err());
        assert!(
            parse(&PRICING.replace("cpus = 4\n[pricing.instances.\"g4", "cpus = 0\n[pricing.instances.\"g4")).is_err()
        );
        let e = parse(&PRICING.replace("-*\"\ninstance = \"g4dn.xlarge\"", "-*\"\ninstance = \"p3\""))
            .unwrap()
            .pricing
            .check_references(|_| false)
            .unwrap_err();
        assert!(e.contains("pricing.nodes[0]") && e.contains("p3"), "{e}");
        let e = parse("[pricing.instances.x]\non_demand = 1\ncpus = 1\nram = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ram"), "{e}");
    }

    #[test]
    fn budget_is_read() {
        let s = parse(
            "[budget]\nenabled = true\nname_template = \"hpc-{project}-monthly\"\nmax_age = 600\n\
             on_missing = \"allow\"\non_stale = \"deny\"\nthreshold_percent = 90\ncache_file = \"/tmp/b.json\"\n\
             reservations_file = \"/tmp/r.jsonl\"\n",
        )
        .unwrap();
        assert!(s.budget.enabled);
        assert_eq!(s.budget.reservations_file, Path::new("/tmp/r.jsonl"));
        assert_eq!(parse(&s.to_toml().unwrap()).unwrap(), s, "written back the same");
        assert_eq!(s.budget.max_age, Duration::from_secs(600));
        assert_eq!(s.budget.on_missing, BudgetFallback::Allow);
        assert_eq!(s.budget.on_stale, BudgetFallback::Deny);
        assert_eq!(s.budget.threshold_percent, 90.0);
        assert_eq!(s.budget.budget_name("P1"), "hpc-P1-monthly");
        assert_eq!(s.budget.project_of("hpc-P1-monthly"), Some("P1"));
        assert_eq!(s.budget.project_of("hpc--monthly"), None);
        assert_eq!(s.budget.project_of("other"), None);
        let d = Settings::default().budget;
        assert!(!d.enabled);
        assert_eq!(
            d.reservations_file,
            Path::new("/var/spool/cost-tags/reservations.jsonl")
        );
        assert_eq!(
            (d.on_missing, d.on_stale),
            (BudgetFallback::Deny, BudgetFallback::Allow)
        );
        assert_eq!(d.budget_name("P1"), "P1");
    }

    #[test]
    fn bad_budget_settings_are_refused() {
        for (text, want) in [
            ("[budget]\nname_template = \"x\"", "exactly once"),
            ("[budget]\nname_template = \"{project}-{project}\"", "exactly once"),
            ("[budget]\nname_template = \"a:{project}\"", "cannot contain"),
            ("[budget]\nthreshold_percent = 0", "threshold_percent"),
            ("[budget]\nmax_age = 0", "max_age"),
            ("[budget]\nmax_age = 9999999", "between 0 and"),
            ("[budget]\non_stale = \"maybe\"", "unknown variant"),
            ("[budget]\naccount_id = \"12\"", "12 digits"),
            ("[budget]\nenable = true", "enable"),
            (
                "[budget.limits]\nP = nan",
                "budget.limits.P: the limit must be a number above 0",
            ),
            (
                "[budget.limits]\nP = inf",
                "budget.limits.P: the limit must be a number above 0",
            ),
            (
                "[budget.limits]\nP = -inf",
                "budget.limits.P: the limit must be a number above 0",
            ),
            (
                "[budget.limits]\nP = 0",
                "budget.limits.P: the limit must be a number above 0",
            ),
            (
                "[budget.limits]\nP = -1.5",
                "budget.limits.P: the limit must be a number above 0",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("/etc/x.toml") && e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn tagging_is_read_and_checked() {
        assert_eq!(parse("").unwrap().tagging, TaggingSettings::default());
        let s =
            parse("[tagging]\nmode = \"controller\"\ncalls_per_second = 2.5\nburst = 5\npoll_seconds = 7\n").unwrap();
        assert_eq!(s.tagging.mode, TaggingMode::Controller);
        assert_eq!(s.tagging.poll_seconds, 7);
        assert_eq!((s.tagging.calls_per_second, s.tagging.burst), (2.5, 5));
        for bad in [
            "calls_per_second = 0",
            "calls_per_second = 1000",
            "burst = 0",
            "poll_seconds = 0",
            "mode = \"x\"",
        ] {
            assert!(parse(&format!("[tagging]\n{bad}\n")).is_err(), "{bad}");
        }
        assert!(!Settings::default().to_toml().unwrap().contains("[tagging]"));
        assert_eq!(parse(&s.to_toml().unwrap()).unwrap(), s);
    }

    #[test]
    fn the_timeline_follows_state_dir_unless_named_or_switched_off() {
        let s = parse("state_dir = \"/tmp/s\"\n").unwrap();
        assert_eq!(s.timeline_file(), Some(PathBuf::from("/tmp/s/timeline.jsonl")));
        assert_eq!(s.timeline.retention_days, 400);
        assert_eq!(
            Settings::default().timeline_file(),
            Some(PathBuf::from("/var/spool/cost-tags/timeline.jsonl"))
        );
        let s = parse("[timeline]\nfile = \"/x/t.jsonl\"\nretention_days = 30\n").unwrap();
        assert_eq!(s.timeline_file(), Some(PathBuf::from("/x/t.jsonl")));
        assert_eq!(parse(&s.to_toml().unwrap()).unwrap(), s);
        assert_eq!(parse("[timeline]\nfile = \"\"\n").unwrap().timeline_file(), None);
        for bad in ["retention_days = 0", "retention_days = 99999", "retention = 3"] {
            assert!(parse(&format!("[timeline]\n{bad}\n")).is_err(), "{bad}");
        }
        assert!(!Settings::default().to_toml().unwrap().contains("[timeline]"));
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let e = Settings::load(Some(Path::new("/nonexistent/cost-tags.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cost-tags.toml"));
    }
}
