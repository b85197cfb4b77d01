//! The budget decision project-check makes for a project the projects file allows, from
//! the cache alone. The messages are the ones users of the public ParallelCluster scripts
//! already know.

use std::time::{Duration, SystemTime};

use super::cache::{self, CacheError, Lookup};
use crate::config::{BudgetFallback, BudgetSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetVerdict {
    /// Within budget, or (with `on_missing = "allow"`) no budget to check.
    Allowed,
    /// Let through although the cache could not tell (`on_stale = "allow"`); the reason is
    /// for the administrator's log.
    AllowedUnchecked(String),
    /// Refused: `message` for the submitter, `log` for the administrator when there is
    /// more to say than the message does.
    Denied { message: String, log: Option<String> },
}

/// Looks the project's budget up in the cache and decides (see [`decide`]).
pub fn check(settings: &BudgetSettings, project: &str, now: SystemTime) -> BudgetVerdict {
    let found = cache::lookup(&settings.cache_file, &settings.budget_name(project));
    decide(settings, &found, project, now)
}

/// Decides for `project` from what the cache held for its budget, read at `now`.
pub fn decide(
    settings: &BudgetSettings,
    found: &Result<Lookup, CacheError>,
    project: &str,
    now: SystemTime,
) -> BudgetVerdict {
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
        Err(why) => {
            return match settings.on_stale {
                BudgetFallback::Allow => {
                    BudgetVerdict::AllowedUnchecked(format!("{why}; project {project} allowed (on_stale = allow)"))
                }
                BudgetFallback::Deny => BudgetVerdict::Denied {
                    message: format!(
                        "The budget of the Project {project} cannot be checked right now. Please ask the administrator."
                    ),
                    log: Some(format!("{why}; project {project} refused (on_stale = deny)")),
                },
            };
        }
    };
    let Some(budget) = &found.budget else {
        return match settings.on_missing {
            BudgetFallback::Allow => BudgetVerdict::Allowed,
            BudgetFallback::Deny => BudgetVerdict::Denied {
                message: format!(
                    "The Project {project} does not have any associated budget. Please ask the administrator to create it."
                ),
                log: None,
            },
        };
    };
    if budget.percent_used() >= settings.threshold_percent {
        return BudgetVerdict::Denied {
            message: format!(
                "The Project {project} does not have more budget allocated for this {}.",
                budget.period_word()
            ),
            log: None,
        };
    }
    BudgetVerdict::Allowed
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
    use crate::budget::cache::{BudgetCache, BudgetSpend};
    use std::path::PathBuf;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_700_000_000;

    fn settings() -> BudgetSettings {
        BudgetSettings {
            enabled: true,
            cache_file: PathBuf::from("/var/spool/cost-tags/budgets.jsonl"),
            ..BudgetSettings::default()
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
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

    fn decide(s: &BudgetSettings, c: &BudgetCache, project: &str, now: SystemTime) -> BudgetVerdict {
        let found = Lookup {
            header: c.header.clone(),
            budget: c.budgets.get(&s.budget_name(project)).cloned(),
        };
        super::decide(s, &Ok(found), project, now)
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
        assert_eq!(decide(&s, &c, "Below", at(T0 + 60)), BudgetVerdict::Allowed);
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
        assert_eq!(decide(&s90, &c, "P", at(T0)), BudgetVerdict::Allowed);
        assert_eq!(
            denied(decide(&s90, &c, "Q", at(T0))),
            "The Project Q does not have more budget allocated for this quarter."
        );
    }

    #[test]
    fn a_zero_limit_is_spent_as_soon_as_anything_is() {
        let c = cache(&[("Zero", 0.0, 0.0, "MONTHLY"), ("ZeroSpent", 0.0, 0.01, "MONTHLY")]);
        assert_eq!(decide(&settings(), &c, "Zero", at(T0)), BudgetVerdict::Allowed);
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
        assert_eq!(decide(&allow, &c, "NoBudget", at(T0)), BudgetVerdict::Allowed);
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
                super::decide(&s, c, "P", at(T0)),
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
            super::decide(&strict, &stale_spent, "P", at(T0 - 86_400)),
            BudgetVerdict::Denied { .. }
        ));
        for c in broken.iter().chain([&stale_spent]) {
            match super::decide(&strict, c, "P", at(T0 + 7200)) {
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
}
