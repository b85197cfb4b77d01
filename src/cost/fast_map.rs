//! The maps the engine looks up once per record (groups, prices, job ids): rustc's
//! FxHash, several times quicker than the default SipHash on short keys. Its weakness to
//! crafted collisions does not matter here: keys are user, account, partition and
//! validated project names, and a collision costs time, never a wrong sum. Its own file
//! because pricing and aggregation both use it, and neither should import the other for
//! it.

pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
