//! The ground floor: the nouns every other folder shares (an instant and the calendar,
//! a job, a tag set, a project name, a budget's spend, the instance timeline). It imports no folder of the crate,
//! so that any folder may use it without pulling another concept in.

pub mod budget_spend;
pub mod instance_timeline;
pub mod job;
pub mod project_name;
pub mod tag_set;
pub mod time;
