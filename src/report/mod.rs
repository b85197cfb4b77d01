//! `cost-tags report`'s output: the priced sums of the costing engine ([`crate::cost`])
//! printed as a table, CSV or JSON ([`output`]) or as an HTML statement ([`html`]), with
//! an optional SVG chart of spend over time ([`chart`]), and job runs one by one
//! ([`job_rows`], sorted by start time in bounded memory by [`sorted_rows`]).
//! [`text_table`] draws every table printed for people.

pub(crate) mod chart;
mod chart_axis;
pub(crate) mod html;
pub(crate) mod job_rows;
mod json_layout;
pub(crate) mod output;
pub(crate) mod sorted_rows;
pub(crate) mod text_table;
