//! The budget decision project-check makes for a project the projects file allows, from
//! the cache alone. The messages are the ones users of the public ParallelCluster scripts
//! already know.

use std::time::{Duration, Instant};

use super::cache::{self, CacheError, Lookup};
use super::reservations::{self, Journal, JournalError, Reservation};
use super::worst_case::worst_case;
use crate::config::{BudgetFallback, BudgetSettings, Enforce};
use crate::model::time::Timestamp;
use crate::slurm::job_request::JobRequest;
use crate::submit::decision::BudgetVerdict;

/// What a submission, or a modification of a job, asks of the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    /// The job as it would run.
    pub job: &'a JobRequest,
    /// `scontrol update` of a job of the same project: the job as it is now. Its worst
    /// case is already counted (committed by the last refresh, or reserved), so the
    /// change has that much more room than what is left.
    pub replacing: Option<&'a JobRequest>,
}

impl<'a> Ask<'a> {
    /// A new job.
    pub(crate) fn new(job: &'a JobRequest) -> Ask<'a> {
        Ask { job, replacing: None }
    }
}

/// Looks the project's budget up in the cache and decides (see [`decide_reserved`]). A job
/// accepted on its priced worst case is then decided again with what the submissions
/// accepted since the cache's refresh reserved (see [`super::reservations`]), and if
/// still accepted, reserves its own worst case: all under the journal's lock, so two
/// submissions cannot both spend the same money.
///
/// A journal that cannot be used (unreadable, distrusted, its lock not had in time) must
/// not loosen anything: a job refused without reservations stays refused, and one that
/// would be accepted is decided like a stale cache (`on_stale`), the reason in syslog.
pub(crate) fn check(settings: &BudgetSettings, project: &str, size: Option<Ask>, now: Timestamp) -> BudgetVerdict {
    let budget = settings.budget_name(project);
    let found = cache::lookup(&settings.cache_file, &budget);
    let (verdict, reserve) = decide_reserved(settings, &found, project, size, now, 0.0);
    let Ok(cached) = &found else {
        return verdict;
    };
    // Refused on its worst case without reservations: refused with them too, but the
    // message should say what is really left, when the journal can tell.
    let refused_on_price = reserve.is_none() && size.is_some() && matches!(verdict, BudgetVerdict::Denied { .. });
    if reserve.is_none() && !refused_on_price {
        return verdict;
    }
    let since = cached.header.refreshed_at;
    let at = now;
    let journal = &settings.reservations_file;
    let decided = (|| {
        let deadline = Instant::now() + reservations::LOCK_WAIT;
        let Some(mut j) = Journal::open(journal, !refused_on_price, deadline)? else {
            return Err(JournalError::Io(journal.clone(), std::io::ErrorKind::NotFound.into()));
        };
        let reserved = j.reserved(&budget, since, at, settings.max_age)?;
        let (verdict, reserve) = decide_reserved(settings, &found, project, size, now, reserved.cost);
        if let Some(cost) = reserve {
            j.append(&Reservation {
                at,
                budget: budget.clone(),
                cost,
            })?;
        }
        Ok((verdict, reserved.bad_lines))
    })();
    match decided {
        Ok((verdict, 0)) => verdict,
        Ok((verdict, bad)) => {
            crate::log::warn_to_syslog(&format!(
                "{}: {bad} reservation lines skipped (torn, garbled or not an amount)",
                journal.display()
            ));
            verdict
        }
        Err(_) if refused_on_price => verdict,
        Err(e) => cannot_tell(settings, project, e.to_string()),
    }
}

/// [`decide_reserved`] with nothing reserved: the unit tests' shorthand.
#[cfg(test)]
pub(crate) fn decide(
    settings: &BudgetSettings,
    found: &Result<Lookup, CacheError>,
    project: &str,
    size: Option<Ask>,
    now: Timestamp,
) -> BudgetVerdict {
    decide_reserved(settings, found, project, size, now, 0.0).0
}

/// The decision when the budget cannot be told: `on_stale`, with `why` for syslog.
fn cannot_tell(settings: &BudgetSettings, project: &str, why: String) -> BudgetVerdict {
    match settings.on_stale {
        BudgetFallback::Allow => {
            BudgetVerdict::AllowedUnchecked(format!("{why}; project {project} allowed (on_stale = allow)"))
        }
        BudgetFallback::Deny => BudgetVerdict::Denied {
            message: format!(
                "The budget of the Project {project} cannot be checked right now. Please ask the administrator."
            ),
            log: Some(format!("{why}; project {project} refused (on_stale = deny)")),
        },
    }
}

/// Decides for `project` from what the cache held for its budget, read at `now`. With
/// `enforce = "spent"` (or no prices in the cache), a project is refused once AWS's actual
/// spend reaches `threshold_percent` of its limit. With `committed`, once actual +
/// accrued + committed spend would, with this job's worst case (`size`) added, and with
/// `reserved` more already promised by the submissions accepted since the cache's
/// refresh (available = limit − spent − accrued − committed − reserved). Also gives the worst case to reserve when the job is accepted
/// on a priced worst case.
pub(crate) fn decide_reserved(
    settings: &BudgetSettings,
    found: &Result<Lookup, CacheError>,
    project: &str,
    size: Option<Ask>,
    now: Timestamp,
    reserved: f64,
) -> (BudgetVerdict, Option<f64>) {
    let verdict = |v: BudgetVerdict| (v, None);
    let fresh = match found {
        Err(e) => Err(e.to_string()),
        Ok(f) if f.header.ahead(now) > cache::FUTURE_SKEW => Err(format!(
            "{}: the budget cache says it was refreshed {} in the future, more than the {} of clock \
             skew allowed: this machine's clock or the refreshing machine's is wrong, or the cache \
             was copied from elsewhere (run `cost-tags budget refresh` once the clocks agree)",
            settings.cache_file.display(),
            human(f.header.ahead(now)),
            human(cache::FUTURE_SKEW)
        )),
        Ok(f) if f.header.age(now) > settings.max_age => Err(format!(
            "{}: the budget cache is {} old, more than max_age {} (is `cost-tags budget refresh` failing?)",
            settings.cache_file.display(),
            human(f.header.age(now)),
            human(settings.max_age)
        )),
        Ok(f) => Ok(f),
    };
    let found = match fresh {
        Ok(c) => c,
        Err(why) => return verdict(cannot_tell(settings, project, why)),
    };
    let Some(budget) = &found.budget else {
        return verdict(match settings.on_missing {
            BudgetFallback::Allow => BudgetVerdict::Allowed { tell: None },
            BudgetFallback::Deny => BudgetVerdict::Denied {
                message: format!(
                    "The Project {project} does not have any associated budget. Please ask the administrator to create it."
                ),
                log: None,
            },
        });
    };
    let spent_message = || BudgetVerdict::Denied {
        message: format!(
            "The Project {project} does not have more budget allocated for this {}.",
            budget.period_word()
        ),
        log: None,
    };
    let partitions = &found.header.partitions;
    let committed = match settings.enforce {
        Some(Enforce::Committed) => true,
        Some(Enforce::Spent) => false,
        None => !partitions.is_empty(),
    };
    if !committed {
        return verdict(if budget.percent_used() >= settings.threshold_percent {
            spent_message()
        } else {
            BudgetVerdict::Allowed { tell: None }
        });
    }
    let allowed = budget.limit * settings.threshold_percent / 100.0;
    let left = allowed - budget.committed_total() - reserved;
    let Some(ask) = size else {
        return verdict(if left <= 0.0 {
            spent_message()
        } else {
            BudgetVerdict::Allowed { tell: None }
        });
    };
    let hours_left = Some(budget.hours_left(now));
    // The job being changed is already counted at its worst case: that much is its own.
    let own = ask
        .replacing
        .and_then(|before| worst_case(before, partitions, hours_left).ok())
        .map_or(0.0, |w| w.cost);
    if left <= 0.0 && ask.replacing.is_none() {
        return verdict(spent_message());
    }
    let room = left + own;
    let (unit, period) = (&budget.unit, budget.period_word());
    let has_left = if ask.replacing.is_some() {
        format!(
            "{:.2} {unit} left this {period} besides this job's own {own:.2} {unit}",
            left.max(0.0)
        )
    } else {
        format!("{left:.2} {unit} left this {period}")
    };
    match worst_case(ask.job, partitions, hours_left) {
        Ok(w) if w.cost > room => verdict(BudgetVerdict::Denied {
            message: format!(
                "The project {project} has {has_left}; this job may cost up to {:.2} {unit} ({}). Ask for less \
                 time or fewer nodes, or ask the administrator.",
                w.cost,
                w.describe()
            ),
            log: None,
        }),
        Ok(w) => (
            BudgetVerdict::Allowed {
                tell: settings.tell_users.then(|| {
                    format!(
                        "cost-tags: {project}: this job may cost up to {:.2} {unit}; {has_left}",
                        w.cost
                    )
                }),
            },
            // A change reserves only what it adds to what the job already holds.
            Some(w.cost - own).filter(|&more| more > 0.0),
        ),
        Err(why) => verdict(BudgetVerdict::AllowedUnchecked(format!(
            "project {project}: this job's worst case cannot be priced ({why}); allowed on the spend and \
             commitments so far ({left:.2} {unit} left)"
        ))),
    }
}

/// `95 s`, `31 min`, `26 h`: enough to read an age in a log line.
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::cache::BudgetCache;
    use crate::model::budget_spend::BudgetSpend;
    use std::path::PathBuf;

    const T0: i64 = 1_700_000_000;

    use crate::slurm::job_request::TimeLimit;

    fn settings() -> BudgetSettings {
        BudgetSettings {
            enabled: true,
            cache_file: PathBuf::from("/var/spool/cost-tags/budgets.jsonl"),
            ..BudgetSettings::default()
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs)
    }

    /// The cache holding `spent`, as `check` would find `project`'s budget in it.
    fn cache(spent: &[(&str, f64, f64, &str)]) -> BudgetCache {
        let mut c = BudgetCache::new("123456789012", at(T0));
        for &(name, limit, actual, period) in spent {
            c.budgets.insert(
                name.into(),
                BudgetSpend {
                    limit,
                    actual,
                    forecast: None,
                    unit: "USD".into(),
                    period: period.into(),
                    ..Default::default()
                },
            );
        }
        c
    }

    fn decide(s: &BudgetSettings, c: &BudgetCache, project: &str, now: Timestamp) -> BudgetVerdict {
        let found = Lookup {
            header: c.header.clone(),
            budget: c.budgets.get(&s.budget_name(project)).cloned(),
        };
        super::decide(s, &Ok(found), project, None, now)
    }

    fn denied(v: BudgetVerdict) -> String {
        match v {
            BudgetVerdict::Denied { message, .. } => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn below_at_and_above_the_threshold() {
        let c = cache(&[
            ("Below", 100.0, 99.99, "MONTHLY"),
            ("At", 100.0, 100.0, "MONTHLY"),
            ("Above", 100.0, 250.0, "MONTHLY"),
        ]);
        let s = settings();
        assert!(matches!(
            decide(&s, &c, "Below", at(T0 + 60)),
            BudgetVerdict::Allowed { .. }
        ));
        assert_eq!(
            denied(decide(&s, &c, "At", at(T0 + 60))),
            "The Project At does not have more budget allocated for this month."
        );
        assert_eq!(
            denied(decide(&s, &c, "Above", at(T0 + 60))),
            "The Project Above does not have more budget allocated for this month."
        );
        let s90 = BudgetSettings {
            threshold_percent: 90.0,
            ..settings()
        };
        let c = cache(&[("P", 1000.0, 899.0, "MONTHLY"), ("Q", 1000.0, 900.0, "QUARTERLY")]);
        assert!(matches!(decide(&s90, &c, "P", at(T0)), BudgetVerdict::Allowed { .. }));
        assert_eq!(
            denied(decide(&s90, &c, "Q", at(T0))),
            "The Project Q does not have more budget allocated for this quarter."
        );
    }

    #[test]
    fn a_zero_limit_is_spent_as_soon_as_anything_is() {
        let c = cache(&[("Zero", 0.0, 0.0, "MONTHLY"), ("ZeroSpent", 0.0, 0.01, "MONTHLY")]);
        assert!(matches!(
            decide(&settings(), &c, "Zero", at(T0)),
            BudgetVerdict::Allowed { .. }
        ));
        denied(decide(&settings(), &c, "ZeroSpent", at(T0)));
    }

    #[test]
    fn the_name_template_maps_projects_to_budgets() {
        let s = BudgetSettings {
            name_template: "hpc-{project}".into(),
            ..settings()
        };
        let c = cache(&[("hpc-P", 10.0, 20.0, "MONTHLY"), ("P", 10.0, 0.0, "MONTHLY")]);
        denied(decide(&s, &c, "P", at(T0)));
    }

    #[test]
    fn a_project_without_budget_follows_on_missing() {
        let c = cache(&[]);
        assert_eq!(
            denied(decide(&settings(), &c, "NoBudget", at(T0))),
            "The Project NoBudget does not have any associated budget. Please ask the administrator to create it."
        );
        let allow = BudgetSettings {
            on_missing: BudgetFallback::Allow,
            ..settings()
        };
        assert!(matches!(
            decide(&allow, &c, "NoBudget", at(T0)),
            BudgetVerdict::Allowed { .. }
        ));
    }

    #[test]
    fn stale_missing_and_corrupt_caches_follow_on_stale() {
        let spent = cache(&[("P", 10.0, 20.0, "MONTHLY")]);
        let s = settings();
        // Exactly max_age old is still fresh; one second more is stale.
        denied(decide(&s, &spent, "P", at(T0 + 1800)));
        let stale = decide(&s, &spent, "P", at(T0 + 1801));
        match &stale {
            BudgetVerdict::AllowedUnchecked(why) => {
                assert!(why.contains("30 min old") && why.contains("budgets.jsonl"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // From the future: fresh within the allowed skew, stale beyond it, with a message
        // that says why (the age alone would read 0 s, forever).
        denied(decide(&s, &spent, "P", at(T0 - 300)));
        match decide(&s, &spent, "P", at(T0 - 301)) {
            BudgetVerdict::AllowedUnchecked(why) => {
                assert!(why.contains("in the future") && why.contains("clock"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let path = PathBuf::from("/x/budgets.jsonl");
        let broken: [Result<Lookup, CacheError>; 3] = [
            Err(CacheError::Missing(path.clone())),
            Err(CacheError::Corrupt(path.clone(), "expected value at line 1".into())),
            Err(CacheError::Unreadable(
                path.clone(),
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            )),
        ];
        for c in &broken {
            assert!(matches!(
                super::decide(&s, c, "P", None, at(T0)),
                BudgetVerdict::AllowedUnchecked(_)
            ));
        }
        let strict = BudgetSettings {
            on_stale: BudgetFallback::Deny,
            ..settings()
        };
        let stale_spent = Ok(Lookup {
            header: spent.header.clone(),
            budget: spent.budgets.get("P").cloned(),
        });
        assert!(matches!(
            super::decide(&strict, &stale_spent, "P", None, at(T0 - 86_400)),
            BudgetVerdict::Denied { .. }
        ));
        for c in broken.iter().chain([&stale_spent]) {
            match super::decide(&strict, c, "P", None, at(T0 + 7200)) {
                BudgetVerdict::Denied { message, log } => {
                    assert_eq!(
                        message,
                        "The budget of the Project P cannot be checked right now. Please ask the administrator."
                    );
                    assert!(log.unwrap().contains("on_stale = deny"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A cache with prices (so `committed` is the default): ProjectA has a 500 USD limit,
    /// 400 spent as AWS last said, 30 accrued since and 20 committed by running jobs:
    /// 50 left. A c5.xlarge node of partition compute costs 5 USD an hour.
    fn committed_cache() -> BudgetCache {
        let mut c = BudgetCache::new("123456789012", at(T0));
        c.header.partitions.insert(
            "compute".into(),
            crate::budget::cache::PartitionCost {
                instance: "c5.xlarge".into(),
                hourly: 5.0,
                cpus: 4,
                gpus: 0,
                default_minutes: Some(60),
                max_minutes: None,
                is_default: true,
            },
        );
        c.header.partitions.insert(
            "gpu".into(),
            crate::budget::cache::PartitionCost {
                instance: "g4dn.12xlarge".into(),
                hourly: 4.0,
                cpus: 48,
                gpus: 4,
                default_minutes: None,
                max_minutes: None,
                is_default: false,
            },
        );
        c.budgets.insert(
            "ProjectA".into(),
            BudgetSpend {
                limit: 500.0,
                actual: 400.0,
                unit: "USD".into(),
                period: "MONTHLY".into(),
                accrued: Some(30.0),
                committed: Some(20.0),
                ..Default::default()
            },
        );
        c
    }

    fn job(partition: &str, minutes: Option<u64>, nodes: u32) -> JobRequest {
        JobRequest {
            partitions: vec![partition.into()],
            time_limit: minutes.map_or(TimeLimit::Unset, TimeLimit::Minutes),
            min_nodes: Some(nodes),
            array_tasks: 1,
            ..Default::default()
        }
    }

    fn decide_job(s: &BudgetSettings, c: &BudgetCache, size: &JobRequest) -> BudgetVerdict {
        let found = Lookup {
            header: c.header.clone(),
            budget: c.budgets.get("ProjectA").cloned(),
        };
        let ask = Ask {
            job: size,
            replacing: None,
        };
        super::decide(s, &Ok(found), "ProjectA", Some(ask), at(T0 + 60))
    }

    #[test]
    fn a_modification_has_its_own_worst_case_as_room() {
        let s = settings();
        let c = committed_cache();
        let found = || Lookup {
            header: c.header.clone(),
            budget: c.budgets.get("ProjectA").cloned(),
        };
        let before = job("compute", Some(120), 5);
        let decide_change = |after: &JobRequest| {
            let ask = Ask {
                job: after,
                replacing: Some(&before),
            };
            super::decide(&s, &Ok(found()), "ProjectA", Some(ask), at(T0 + 60))
        };
        // 5 nodes x 2 h x 5 = 50 already counted, 50 left: room for 100. 6 nodes: 60, in.
        assert!(matches!(
            decide_change(&job("compute", Some(120), 6)),
            BudgetVerdict::Allowed { .. }
        ));
        // 11 nodes x 2 h x 5 = 110 > 100: refused, saying what is the job's own.
        assert_eq!(
            denied(decide_change(&job("compute", Some(120), 11))),
            "The project ProjectA has 50.00 USD left this month besides this job's own 50.00 USD; this job \
             may cost up to 110.00 USD (11 nodes x 2 h of c5.xlarge). Ask for less time or fewer nodes, or ask \
             the administrator."
        );
        // Spent to the limit: a change that makes the job smaller still goes in.
        let mut full = c.clone();
        full.budgets.get_mut("ProjectA").unwrap().committed = Some(70.0);
        let found_full = Lookup {
            header: full.header.clone(),
            budget: full.budgets.get("ProjectA").cloned(),
        };
        let smaller = job("compute", Some(60), 5);
        let ask = Ask {
            job: &smaller,
            replacing: Some(&before),
        };
        assert!(matches!(
            super::decide(&s, &Ok(found_full), "ProjectA", Some(ask), at(T0 + 60)),
            BudgetVerdict::Allowed { .. }
        ));
    }

    #[test]
    fn committed_spend_and_the_worst_case_of_the_job() {
        let s = settings();
        let c = committed_cache();
        // 5 nodes x 2 h x 5 = 50: exactly what is left, accepted, and the submitter told.
        match decide_job(&s, &c, &job("compute", Some(120), 5)) {
            BudgetVerdict::Allowed { tell: Some(line) } => assert_eq!(
                line,
                "cost-tags: ProjectA: this job may cost up to 50.00 USD; 50.00 USD left this month"
            ),
            other => panic!("{other:?}"),
        }
        // One minute more: 50.42 > 50, refused with what is left and what it may cost.
        assert_eq!(
            denied(decide_job(&s, &c, &job("compute", Some(121), 5))),
            "The project ProjectA has 50.00 USD left this month; this job may cost up to 50.42 USD \
             (5 nodes x 2.02 h of c5.xlarge). Ask for less time or fewer nodes, or ask the administrator."
        );
        // A smaller job of the same project goes in.
        assert!(matches!(
            decide_job(&s, &c, &job("compute", Some(60), 2)),
            BudgetVerdict::Allowed { .. }
        ));
        // No time limit: the partition's DefaultTime (1 h): 10 nodes x 1 h x 5 = 50, in.
        assert!(matches!(
            decide_job(&s, &c, &job("compute", None, 10)),
            BudgetVerdict::Allowed { .. }
        ));
        // A GPU job: 1 CPU but 2 of the node's 4 GPUs, half a node: 24 h x 4 x 0.5 = 48.
        let gpu = JobRequest {
            min_cpus: Some(1),
            gpus_per_node: Some(2),
            ..job("gpu", Some(24 * 60), 1)
        };
        assert!(matches!(decide_job(&s, &c, &gpu), BudgetVerdict::Allowed { .. }));
        let gpus = JobRequest {
            gpus_per_node: Some(3),
            ..gpu
        };
        assert!(denied(decide_job(&s, &c, &gpus)).contains("may cost up to 72.00 USD"));
        // No time limit anywhere (gpu has no DefaultTime or MaxTime): priced until the end
        // of the budget's month, far more than is left.
        assert!(denied(decide_job(&s, &c, &job("gpu", None, 1))).contains("may cost up to"));
        // A partition without a price: allowed on the spend so far, with a note for syslog.
        match decide_job(&s, &c, &job("debug", Some(60), 1)) {
            BudgetVerdict::AllowedUnchecked(note) => assert!(note.contains("cannot be priced"), "{note}"),
            other => panic!("{other:?}"),
        }
        // Spent and committed already at the limit: refused whatever the job.
        let mut full = c.clone();
        full.budgets.get_mut("ProjectA").unwrap().committed = Some(70.0);
        assert!(denied(decide_job(&s, &full, &job("compute", Some(1), 1))).contains("does not have more budget"));
        // enforce = "spent": only AWS's actual spend counts (400 of 500), the job is not priced.
        let spent_only = BudgetSettings {
            enforce: Some(crate::config::Enforce::Spent),
            ..settings()
        };
        assert_eq!(
            decide_job(&spent_only, &full, &job("compute", Some(6000), 50)),
            BudgetVerdict::Allowed { tell: None }
        );
        // tell_users = false: accepted without the line.
        let quiet = BudgetSettings {
            tell_users: false,
            ..settings()
        };
        assert_eq!(
            decide_job(&quiet, &c, &job("compute", Some(60), 1)),
            BudgetVerdict::Allowed { tell: None }
        );
        // A stale cache decides as before, committed or not (on_stale).
        let found = Lookup {
            header: c.header.clone(),
            budget: c.budgets.get("ProjectA").cloned(),
        };
        let stale = super::decide(
            &s,
            &Ok(found),
            "ProjectA",
            Some(Ask {
                job: &job("compute", Some(60), 1),
                replacing: None,
            }),
            at(T0 + 7200),
        );
        assert!(matches!(stale, BudgetVerdict::AllowedUnchecked(_)), "{stale:?}");
    }

    /// Reservations come off what is left: 50 left, 45 reserved since the refresh, so a
    /// 10 USD job is refused with 5 left, a 5 USD one accepted (and reserved); 50 reserved
    /// leave nothing at all.
    #[test]
    fn reservations_come_off_what_is_left() {
        let (s, c) = (settings(), committed_cache());
        let found = Ok(Lookup {
            header: c.header.clone(),
            budget: c.budgets.get("ProjectA").cloned(),
        });
        let decide = |size: &JobRequest, reserved| {
            super::decide_reserved(&s, &found, "ProjectA", Some(Ask::new(size)), at(T0 + 60), reserved)
        };
        let (v, reserve) = decide(&job("compute", Some(60), 2), 45.0);
        assert_eq!(reserve, None);
        assert_eq!(
            denied(v),
            "The project ProjectA has 5.00 USD left this month; this job may cost up to 10.00 USD \
             (2 nodes x 1 h of c5.xlarge). Ask for less time or fewer nodes, or ask the administrator."
        );
        let (v, reserve) = decide(&job("compute", Some(60), 1), 45.0);
        assert_eq!(reserve, Some(5.0));
        assert_eq!(
            v,
            BudgetVerdict::Allowed {
                tell: Some("cost-tags: ProjectA: this job may cost up to 5.00 USD; 5.00 USD left this month".into())
            }
        );
        assert!(denied(decide(&job("compute", Some(1), 1), 50.0).0).contains("does not have more budget"));
    }

    /// `check` on files: the journal is read, decided against and appended to; a journal
    /// others can write is never trusted, and never loosens: a job refused without it
    /// stays refused, and one that would go in follows `on_stale`.
    #[test]
    fn check_reserves_and_a_distrusted_journal_does_not_loosen() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let now = Timestamp::now();
        let mut c = committed_cache();
        c.header.refreshed_at = now;
        let s = BudgetSettings {
            cache_file: dir.path().join("budgets.jsonl"),
            reservations_file: dir.path().join("reservations.jsonl"),
            ..settings()
        };
        c.write(&s.cache_file).unwrap();
        // 50 left, 20 a job: two go in, the third sees 10 left.
        let big = job("compute", Some(120), 2);
        for left in ["50.00", "30.00"] {
            match check(&s, "ProjectA", Some(Ask::new(&big)), now) {
                BudgetVerdict::Allowed { tell: Some(t) } => assert!(t.contains(&format!("{left} USD left")), "{t}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(denied(check(&s, "ProjectA", Some(Ask::new(&big)), now)).contains("has 10.00 USD left"));
        std::fs::set_permissions(&s.reservations_file, std::fs::Permissions::from_mode(0o622)).unwrap();
        // Refused anyway (60 > 50 even with nothing reserved): refused, journal or not.
        let huge = job("compute", Some(360), 2);
        assert!(denied(check(&s, "ProjectA", Some(Ask::new(&huge)), now)).contains("has 50.00 USD left"));
        // Would go in: on_stale decides, with the reason for syslog.
        let small = job("compute", Some(60), 1);
        match check(&s, "ProjectA", Some(Ask::new(&small)), now) {
            BudgetVerdict::AllowedUnchecked(why) => {
                assert!(why.contains("distrusted") && why.contains("on_stale = allow"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let strict = BudgetSettings {
            on_stale: BudgetFallback::Deny,
            ..s.clone()
        };
        match check(&strict, "ProjectA", Some(Ask::new(&small)), now) {
            BudgetVerdict::Denied { message, log } => {
                assert!(message.contains("cannot be checked right now"), "{message}");
                assert!(log.unwrap().contains("writable by group or others"));
            }
            other => panic!("{other:?}"),
        }
        // A journal in a missing directory: the same, with how to fix it.
        let nowhere = BudgetSettings {
            reservations_file: dir.path().join("missing/reservations.jsonl"),
            ..strict
        };
        match check(&nowhere, "ProjectA", Some(Ask::new(&small)), now) {
            BudgetVerdict::Denied { log, .. } => assert!(log.unwrap().contains("create it once"), "no hint"),
            other => panic!("{other:?}"),
        }
    }
}
