//! State files written as root and read by other processes at any moment (the node
//! ledger, the budget cache, the reservation journal, the price and identity caches):
//! replaced in one step, never through a link ([`atomic_file`]), in directories only root
//! (or the one user who must) can write ([`trusted_dir`]).

pub(crate) mod atomic_file;
pub(crate) mod trusted_dir;
