//! Budgets end to end against a private moto server, through the real aws-sdk-budgets:
//! `cost-tags budget refresh` writes the cache, project-check refuses from it alone,
//! `budget create` makes the budget the issue asks for, `budget list` shows spend against
//! limits. The real-Slurm submission path is in tests/submit_filter_budget.rs.

use crate::support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use aws_sdk_budgets::types::{BudgetType, TimeUnit};
use support::moto::{add_budget, apply_env, block_on, budgets_client, MotoServer, ACCOUNT_ID};

const SPENT: &str = "The Project Spent does not have more budget allocated for this month.";
const NO_BUDGET: &str =
    "The Project NoBudget does not have any associated budget. Please ask the administrator to create it.";

struct Setup {
    moto: MotoServer,
    dir: tempfile::TempDir,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Setup {
    fn start(extra_settings: &str) -> Option<Setup> {
        let moto = MotoServer::start()?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("projects_list.conf"), "alice = Spent, Within, NoBudget, Edge\n").unwrap();
        let setup = Setup { moto, dir };
        setup.settings(extra_settings);
        Some(setup)
    }

    fn settings(&self, extra: &str) {
        let d = self.dir.path();
        std::fs::write(
            d.join("cost-tags.toml"),
            format!(
                "projects_file = {:?}\n[budget]\nenabled = true\nenforce = \"spent\"\ncache_file = {:?}\nreservations_file = {:?}\n{extra}",
                d.join("projects_list.conf"),
                self.cache(),
                self.journal()
            ),
        )
        .unwrap();
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache/budgets.jsonl")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("reservations.jsonl")
    }

    fn command(&self, binary: &str, endpoint: &str) -> Command {
        let mut c = Command::new(crate::bin(binary));
        apply_env(&mut c, endpoint);
        c.env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
            .stdin(Stdio::null());
        c
    }

    fn cost_tags(&self, args: &[&str]) -> Output {
        self.command("cost-tags", &self.moto.endpoint())
            .args(args)
            .output()
            .unwrap()
    }

    /// project-check with no AWS reachable at all: only the cache may decide.
    fn project_check(&self, user: &str, project: &str) -> Output {
        self.command("project-check", "http://127.0.0.1:9")
            .args([user, project])
            .output()
            .unwrap()
    }

    fn seed(&self) {
        let client = budgets_client(&self.moto.endpoint());
        block_on(async {
            add_budget(&client, "Spent", "100", "130.25").await;
            add_budget(&client, "Within", "100", "40").await;
            add_budget(&client, "Edge", "100", "100.00").await;
            add_budget(&client, "Unrelated-team-budget", "5000", "1").await;
        });
    }
}

/// The cache's header line and its budget lines by name.
fn read_cache(path: &std::path::Path) -> (serde_json::Value, std::collections::BTreeMap<String, serde_json::Value>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let header = lines.next().unwrap();
    let budgets = lines.map(|b| (b["name"].as_str().unwrap().to_string(), b)).collect();
    (header, budgets)
}

fn assert_refused(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), message);
}

fn assert_allowed(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn refresh_writes_the_cache_and_project_check_decides_from_it_alone() {
    let Some(s) = Setup::start("") else { return };
    s.seed();
    let out = s.cost_tags(&["budget", "refresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("4 budgets of account 123456789012"),
        "{}",
        text(&out.stderr)
    );

    let (header, budgets) = read_cache(&s.cache());
    assert_eq!(header["account_id"], ACCOUNT_ID);
    assert_eq!(budgets["Spent"]["actual"], 130.25);
    assert_eq!(budgets["Spent"]["limit"], 100.0);
    assert_eq!(budgets["Within"]["period"], "MONTHLY");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(s.cache()).unwrap().permissions().mode() & 0o777,
        0o644
    );

    assert_refused(&s.project_check("alice", "Spent"), SPENT);
    assert_refused(
        &s.project_check("alice", "Edge"),
        "The Project Edge does not have more budget allocated for this month.",
    );
    assert_refused(&s.project_check("alice", "NoBudget"), NO_BUDGET);
    assert_allowed(&s.project_check("alice", "Within"));
    // The projects file still comes first: a budget does not open a project.
    assert_refused(
        &s.project_check("bob", "Within"),
        "You are not allowed to use the project Within",
    );

    // A budget refilled in AWS is seen after the next refresh.
    block_on(async {
        let client = budgets_client(&s.moto.endpoint());
        client
            .delete_budget()
            .account_id(ACCOUNT_ID)
            .budget_name("Spent")
            .send()
            .await
            .unwrap();
        add_budget(&client, "Spent", "500", "130.25").await;
    });
    assert_refused(&s.project_check("alice", "Spent"), SPENT);
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    assert_allowed(&s.project_check("alice", "Spent"));
}

#[test]
fn threshold_on_missing_and_the_name_template() {
    let Some(s) = Setup::start("threshold_percent = 40\non_missing = \"allow\"\nname_template = \"hpc-{project}\"\n")
    else {
        return;
    };
    let client = budgets_client(&s.moto.endpoint());
    block_on(async {
        add_budget(&client, "hpc-Within", "100", "39.99").await;
        add_budget(&client, "hpc-Spent", "100", "40").await;
        // Named like a project but not through the template: not this project's budget.
        add_budget(&client, "NoBudget", "100", "1000").await;
    });
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    assert_allowed(&s.project_check("alice", "Within"));
    assert_refused(&s.project_check("alice", "Spent"), SPENT);
    assert_allowed(&s.project_check("alice", "NoBudget"));
}

#[test]
fn a_failed_refresh_keeps_the_old_cache() {
    let Some(s) = Setup::start("") else { return };
    s.seed();
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    let before = std::fs::read(s.cache()).unwrap();
    let out = s
        .command("cost-tags", "http://127.0.0.1:9")
        .args(["budget", "refresh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("budget refresh failed, keeping the cache of"), "{err}");
    assert_eq!(std::fs::read(s.cache()).unwrap(), before);
    assert_refused(&s.project_check("alice", "Spent"), SPENT);
}

/// Issue 20, item 3: AWS answering a limit that is not a finite number above 0, or a spend
/// that is not finite. The refresh refuses the answer where it reads it: exit 1 naming the
/// budget and the field, never writing `NaN` or `inf`, the old cache kept byte for byte (a
/// cache with `"limit":null` reads as corrupt, and a corrupt cache follows `on_stale`).
#[test]
fn non_finite_or_non_positive_budget_amounts_are_refused_and_the_cache_kept() {
    let Some(s) = Setup::start("") else { return };
    s.seed();
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    let before = std::fs::read(s.cache()).unwrap();
    let client = budgets_client(&s.moto.endpoint());
    for (limit, actual, field) in [
        ("NaN", "1", "BudgetLimit.Amount is not a finite number"),
        ("1e400", "1", "BudgetLimit.Amount is not a finite number"),
        ("0", "1", "its limit (BudgetLimit.Amount) is 0, not above 0"),
        ("-100", "1", "its limit (BudgetLimit.Amount) is -100, not above 0"),
        (
            "100",
            "NaN",
            "CalculatedSpend.ActualSpend.Amount is not a finite number",
        ),
        (
            "100",
            "-1e400",
            "CalculatedSpend.ActualSpend.Amount is not a finite number",
        ),
    ] {
        block_on(add_budget(&client, "NoBudget", limit, actual));
        let out = s.cost_tags(&["budget", "refresh"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "limit {limit}, actual {actual}: {err}");
        assert!(
            err.contains("budget refresh failed, keeping the cache of")
                && err.contains(&format!("budget \"NoBudget\": {field}")),
            "limit {limit}, actual {actual}: {err}"
        );
        let lower = err.to_lowercase();
        assert!(!lower.contains("nan") && !lower.contains("inf"), "{err}");
        assert_eq!(
            std::fs::read(s.cache()).unwrap(),
            before,
            "limit {limit}, actual {actual}"
        );
        // The cache still decides: a project without a budget is refused (on_missing).
        assert_refused(&s.project_check("alice", "NoBudget"), NO_BUDGET);
        block_on(async {
            client
                .delete_budget()
                .account_id(ACCOUNT_ID)
                .budget_name("NoBudget")
                .send()
                .await
                .unwrap()
        });
    }
    // A credit (negative actual spend) is a real amount: kept.
    block_on(add_budget(&client, "Credited", "100", "-2.50"));
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    assert_eq!(read_cache(&s.cache()).1["Credited"]["actual"], -2.5);
}

#[test]
fn stale_missing_and_corrupt_caches_follow_on_stale() {
    let Some(s) = Setup::start("") else { return };
    // No cache yet: on_stale = "allow" lets an allowed project through.
    assert_allowed(&s.project_check("alice", "Spent"));
    s.seed();
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    // An hour old is stale (max_age 30 min): allowed; with on_stale = "deny", refused.
    let text = std::fs::read_to_string(s.cache()).unwrap();
    let (mut header, _) = read_cache(&s.cache());
    header["refreshed_at"] = (header["refreshed_at"].as_u64().unwrap() - 3600).into();
    let rest = text.split_once('\n').unwrap().1;
    std::fs::write(s.cache(), format!("{header}\n{rest}")).unwrap();
    assert_allowed(&s.project_check("alice", "Spent"));
    s.settings("on_stale = \"deny\"\n");
    let stale = "The budget of the Project Spent cannot be checked right now. Please ask the administrator.";
    assert_refused(&s.project_check("alice", "Spent"), stale);
    std::fs::write(s.cache(), "{ not json").unwrap();
    assert_refused(&s.project_check("alice", "Within"), &stale.replace("Spent", "Within"));
    s.settings("");
    assert_allowed(&s.project_check("alice", "Within"));
}

#[test]
fn create_makes_a_tag_filtered_cost_budget_with_notifications() {
    let Some(s) = Setup::start("") else { return };
    let out = s.cost_tags(&[
        "budget",
        "create",
        "Within",
        "--limit",
        "1250.50",
        "--period",
        "quarterly",
        "--notify",
        "pi@example.org",
        "--at",
        "80",
        "--notify",
        "admin@example.org",
        "--at",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created budget Within"),
        "{}",
        text(&out.stdout)
    );

    let client = budgets_client(&s.moto.endpoint());
    let (budget, notifications) = block_on(async {
        let b = client
            .describe_budget()
            .account_id(ACCOUNT_ID)
            .budget_name("Within")
            .send()
            .await
            .unwrap()
            .budget
            .unwrap();
        let n = client
            .describe_notifications_for_budget()
            .account_id(ACCOUNT_ID)
            .budget_name("Within")
            .send()
            .await
            .unwrap()
            .notifications
            .unwrap_or_default();
        (b, n)
    });
    assert_eq!(budget.budget_type(), &BudgetType::Cost);
    assert_eq!(budget.time_unit(), &TimeUnit::Quarterly);
    let limit = budget.budget_limit().unwrap();
    assert_eq!((limit.amount(), limit.unit()), ("1250.50", "USD"));
    #[allow(deprecated)]
    let filters = budget.cost_filters().unwrap();
    assert_eq!(
        filters["TagKeyValue"],
        vec!["user:aws-parallelcluster-project$Within".to_string()]
    );
    let mut thresholds: Vec<f64> = notifications.iter().map(|n| n.threshold()).collect();
    thresholds.sort_by(f64::total_cmp);
    assert_eq!(thresholds, vec![80.0, 100.0]);

    // A second create of the same budget fails clearly, changing nothing.
    let again = s.cost_tags(&["budget", "create", "Within", "--limit", "5"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("CreateBudget"), "{}", text(&again.stderr));
    // Bad input never reaches AWS.
    let bad = s.cost_tags(&["budget", "create", "Bad;Name", "--limit", "5"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("contains ';'"), "{}", text(&bad.stderr));
}

#[test]
fn list_shows_spend_limit_and_projects_without_budget() {
    let Some(s) = Setup::start("") else { return };
    s.seed();
    let out = s.cost_tags(&["budget", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |p: &str| {
        rows.iter()
            .find(|r| r["project"] == p)
            .unwrap_or_else(|| panic!("{p} in {rows:?}"))
            .clone()
    };
    assert_eq!(row("Spent")["submissions"], "refused");
    assert_eq!(row("Spent")["percent_used"], 130.3);
    assert_eq!(row("Within")["submissions"], "allowed");
    assert_eq!(row("NoBudget")["budget"], serde_json::Value::Null);
    assert_eq!(row("NoBudget")["submissions"], "refused");
    // Budgets whose names are projects show even if the projects file does not name them.
    assert_eq!(row("Unrelated-team-budget")["limit"], 5000.0);

    let table = s.cost_tags(&["budget", "list"]);
    let t = text(&table.stdout);
    assert!(
        t.lines()
            .any(|l| l.starts_with("Spent") && l.contains("130.25 USD") && l.ends_with("refused")),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.starts_with("NoBudget") && l.contains("(none)")),
        "{t}"
    );

    // --cached reads what project-check reads, and needs no AWS.
    assert_eq!(s.cost_tags(&["budget", "refresh"]).status.code(), Some(0));
    let cached = s
        .command("cost-tags", "http://127.0.0.1:9")
        .args(["budget", "list", "--cached", "--json"])
        .output()
        .unwrap();
    assert_eq!(cached.status.code(), Some(0), "{}", text(&cached.stderr));
    let cached: Vec<serde_json::Value> = serde_json::from_slice(&cached.stdout).unwrap();
    assert_eq!(cached, rows);
}

/// `budget refresh` compacts the reservation journal: the reservations made before its
/// snapshot (its jobs are now in squeue or sacct) are dropped, a newer one is kept and
/// shows in `budget list`, and the journal stays SlurmUser's, with its mode.
#[test]
fn a_refresh_drops_the_reservations_it_covers() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(s) = Setup::start("") else { return };
    s.seed();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let later = now + 120;
    std::fs::write(
        s.journal(),
        format!(
            "{{\"at\":{},\"budget\":\"Within\",\"cost\":5.0}}\n\
             {{\"at\":{},\"budget\":\"Within\",\"cost\":7.0}}\n\
             torn{{\"at\":\n\
             {{\"at\":{later},\"budget\":\"Within\",\"cost\":2.5}}\n",
            now - 600,
            now - 1
        ),
    )
    .unwrap();
    std::fs::set_permissions(s.journal(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        // As slurmctld's SlurmUser would own it (nobody here).
        std::os::unix::fs::chown(s.journal(), Some(65534), Some(65534)).unwrap();
    }
    let before = std::fs::metadata(s.journal()).unwrap();
    let out = s.cost_tags(&["budget", "refresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 reservations covered by this refresh dropped, 1 kept, 1 bad lines dropped"),
        "{}",
        text(&out.stderr)
    );
    let journal = std::fs::read_to_string(s.journal()).unwrap();
    assert_eq!(
        journal,
        format!("{{\"at\":{later},\"budget\":\"Within\",\"cost\":2.5}}\n")
    );
    let after = std::fs::metadata(s.journal()).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));

    let out = s.cost_tags(&["budget", "list", "--cached", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let within = rows.iter().find(|r| r["project"] == "Within").unwrap();
    assert_eq!(within["reserved"], 2.5, "{within}");
    let table = text(&s.cost_tags(&["budget", "list", "--cached"]).stdout);
    assert!(table.contains("RESERVED") && table.contains("2.50 USD"), "{table}");
}
