//! The binaries' one HTTPS stack (the SDK's default client: hyper 1, rustls 0.23), as
//! sites use it: through an HTTP proxy named by `HTTP_PROXY` / `HTTPS_PROXY` (and around
//! it for `NO_PROXY` hosts), and trusting the roots of the system store, or of
//! `SSL_CERT_FILE` or `SSL_CERT_DIR`, which is how a TLS-intercepting proxy's CA is
//! trusted. cost-prolog runs as a whole process against moto (plain HTTP, or behind a TLS endpoint whose
//! certificate a per-test CA signed) with the IMDSv2 emulator; the proxy and the TLS
//! endpoint record what reached them.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::https_parts::{HttpProxy, TestCa, TlsFront};
use support::moto::{apply_env, MotoInstance};
use support::namespace;

const PROJECT: &str = "aws-parallelcluster-project";

/// Proxy and trust settings a developer's shell may hold; each test sets its own.
const PROXY_AND_TRUST_ENV: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUEST_METHOD",
];

/// One compute node: its instance in moto, its IMDS, its state and settings.
struct Node(MotoInstance);

impl std::ops::Deref for Node {
    type Target = MotoInstance;
    fn deref(&self) -> &MotoInstance {
        &self.0
    }
}

impl Node {
    fn start() -> Option<Node> {
        let node = MotoInstance::start()?;
        let d = node.dir.path();
        std::fs::write(
            d.join("cost-tags.toml"),
            format!(
                "state_dir = {:?}\ncache_dir = {:?}\ndeadline = 3\n",
                d.join("state"),
                d.join("run"),
            ),
        )
        .unwrap();
        Some(Node(node))
    }

    /// Environment of a hook for `job` talking to AWS at `endpoint`, with no proxy and
    /// no trust settings (the caller adds its own).
    fn hook_env(&self, c: &mut Command, endpoint: &str, job: &str) {
        apply_env(c, endpoint);
        for v in PROXY_AND_TRUST_ENV {
            c.env_remove(v);
        }
        c.envs(self.imds.env())
            .env("COST_TAGS_CONFIG", self.dir.path().join("cost-tags.toml"))
            .env("COST_TAGS_ENV_FILE", self.dir.path().join("cost-tags.env"))
            .env("SLURM_JOB_ID", job)
            .env("SLURM_JOB_USER", "ctalice")
            .env("SLURM_JOB_COMMENT", "ProjectA")
            .env("SLURM_JOB_PARTITION", "compute")
            .env("SLURM_CLUSTER_NAME", "test")
            .stdin(Stdio::null());
    }

    fn prolog(&self, endpoint: &str, job: &str) -> Command {
        let mut c = Command::new(crate::bin("cost-prolog"));
        self.hook_env(&mut c, endpoint, job);
        c
    }

    fn cost_tags(&self) -> BTreeMap<String, String> {
        self.moto
            .tags(&self.instance)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect()
    }
}

fn run(mut c: Command) -> (Output, String) {
    let out = c.output().expect("run the hook");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "hook exit status; stderr:\n{stderr}");
    (out, stderr)
}

/// The hook tagged the instance: nothing owed, the project tag in moto.
fn assert_tagged(node: &Node, stderr: &str) {
    assert!(!stderr.contains("owed"), "the hook owes tags:\n{stderr}");
    assert_eq!(
        node.cost_tags().get(PROJECT).map(String::as_str),
        Some("ProjectA"),
        "tags in moto; hook stderr:\n{stderr}"
    );
}

/// The hook could not reach EC2 because it did not trust the endpoint's certificate:
/// tags owed, none in moto, and the TLS endpoint saw the client refuse its CA.
fn assert_refused_unknown_ca(node: &Node, front: &TlsFront, stderr: &str) {
    assert!(stderr.contains("tags owed"), "expected tags owed:\n{stderr}");
    assert_eq!(
        node.cost_tags().get(PROJECT),
        None,
        "tagged through an untrusted certificate"
    );
    assert_eq!(front.served(), 0, "a request got through the TLS endpoint");
    let errors = front.handshake_errors();
    assert!(
        errors.iter().any(|e| e.contains("UnknownCA")),
        "the client should refuse the certificate as from an unknown CA; handshake errors: {errors:?}; hook stderr:\n{stderr}"
    );
}

fn tls_front(node: &Node, ca: &TestCa) -> TlsFront {
    let (cert, key) = ca.server_cert();
    TlsFront::start(&node.moto.endpoint(), cert, key)
}

#[test]
fn http_proxy_carries_plain_http_and_no_proxy_goes_around_it() {
    let Some(node) = Node::start() else { return };
    let proxy = HttpProxy::start();
    let endpoint = format!("http://localhost:{}", node.moto.port());

    // moto is plain http://, so HTTP_PROXY is the variable that applies. IMDS is
    // http:// too, but a proxy cannot reach the node's own IMDS: cost-tags asks it
    // directly whatever the environment says (the first run has no cached identity).
    let mut c = node.prolog(&endpoint, "101");
    c.env("HTTP_PROXY", proxy.url());
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    assert_eq!(
        proxy.seen(),
        [format!("POST {endpoint}/")],
        "the EC2 call, and it alone (not IMDS), should go through the proxy, in absolute form; stderr:\n{stderr}"
    );

    // The same proxy with moto's host in NO_PROXY: direct.
    let mut c = node.prolog(&endpoint, "102");
    c.env("HTTP_PROXY", proxy.url())
        .env("no_proxy", "169.254.169.254, localhost");
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    assert_eq!(node.cost_tags()["aws-parallelcluster-jobid"], "101 102");
    assert_eq!(
        proxy.seen().len(),
        1,
        "a NO_PROXY host went through the proxy: {:?}",
        proxy.seen()
    );
}

#[test]
fn https_proxy_tunnels_to_an_endpoint_trusted_through_ssl_cert_file() {
    let Some(node) = Node::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cost-tags test CA (tunnel)");
    let front = tls_front(&node, &ca);
    let proxy = HttpProxy::start();
    let endpoint = format!("https://localhost:{}", front.port());

    let mut c = node.prolog(&endpoint, "201");
    c.env("HTTPS_PROXY", proxy.url())
        .env("SSL_CERT_FILE", ca.write_pem(&dir.path().join("ca.pem")));
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    let seen = proxy.seen();
    assert!(
        seen.contains(&format!("CONNECT localhost:{}", front.port())),
        "HTTPS calls should go through a CONNECT tunnel; the proxy saw {seen:?}; stderr:\n{stderr}"
    );
    assert!(
        seen.iter().all(|l| l.starts_with("CONNECT ")),
        "only the https:// endpoint should use HTTPS_PROXY (IMDS is http://); the proxy saw {seen:?}"
    );
    assert!(front.served() > 0);
}

#[test]
fn tls_trusts_ssl_cert_file_and_refuses_an_unknown_ca() {
    let Some(node) = Node::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cost-tags test CA");
    let stranger = TestCa::new("cost-tags test CA nobody trusts");
    let front = tls_front(&node, &ca);
    let endpoint = format!("https://localhost:{}", front.port());

    let mut c = node.prolog(&endpoint, "301");
    c.env("SSL_CERT_FILE", stranger.write_pem(&dir.path().join("stranger.pem")));
    let (_, stderr) = run(c);
    assert_refused_unknown_ca(&node, &front, &stderr);

    let mut c = node.prolog(&endpoint, "302");
    c.env("SSL_CERT_FILE", ca.write_pem(&dir.path().join("ca.pem")));
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    assert!(front.served() > 0);
}

#[test]
fn tls_trusts_the_system_store() {
    if !namespace::available() {
        return;
    }
    let Some(node) = Node::start() else { return };
    let ca = TestCa::new("cost-tags test site CA");
    let front = tls_front(&node, &ca);
    let endpoint = format!("https://localhost:{}", front.port());

    // The machine's own store: this CA was made a moment ago, so it cannot be there.
    let (_, stderr) = run(node.prolog(&endpoint, "401"));
    assert_refused_unknown_ca(&node, &front, &stderr);

    // A store holding the site's CA, where Debian-like systems keep it
    // (update-ca-certificates writes /etc/ssl/certs/ca-certificates.crt), in a private
    // mount namespace so the machine's store is untouched.
    let store = tempfile::tempdir().unwrap();
    ca.write_pem(&store.path().join("ca-certificates.crt"));
    let mounts: [(&Path, &Path); 1] = [(store.path(), Path::new("/etc/ssl/certs"))];
    let mut c = namespace::command(&mounts, &crate::bin("cost-prolog"));
    node.hook_env(&mut c, &endpoint, "402");
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    assert!(front.served() > 0);
}

#[test]
fn tls_trusts_a_ca_only_in_ssl_cert_dir() {
    let Some(node) = Node::start() else { return };
    let ca = TestCa::new("cost-tags test CA (directory)");
    let front = tls_front(&node, &ca);
    let endpoint = format!("https://localhost:{}", front.port());

    // A directory holding another CA: the endpoint's certificate is refused.
    let other = tempfile::tempdir().unwrap();
    TestCa::new("cost-tags test CA nobody trusts").write_pem(&other.path().join("stranger.pem"));
    let mut c = node.prolog(&endpoint, "501");
    c.env("SSL_CERT_DIR", other.path());
    let (_, stderr) = run(c);
    assert_refused_unknown_ca(&node, &front, &stderr);

    // The CA in a directory named by SSL_CERT_DIR alone (no SSL_CERT_FILE), as a site
    // keeps one beside the distribution's bundle: trusted. The roots are loaded only for
    // this https:// endpoint, from the same variables as the SDK's default client.
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(&dir.path().join("site-ca.pem"));
    let mut c = node.prolog(&endpoint, "502");
    c.env("SSL_CERT_DIR", dir.path());
    let (_, stderr) = run(c);
    assert_tagged(&node, &stderr);
    assert!(front.served() > 0);
}

/// aws-lc is built without CPU jitter entropy (`.cargo/config.toml`): a jitter-seeded
/// generator cost every hook process about 20 ms of CPU at its first handshake. The
/// jitterentropy library's entry point is in no binary that speaks TLS, and aws-lc's
/// kernel-seeded source is (the check fails if the build setting is lost).
#[test]
fn the_tls_crypto_is_built_without_cpu_jitter_entropy() {
    for exe in [
        env!("CARGO_BIN_EXE_cost-prolog"),
        env!("CARGO_BIN_EXE_cost-epilog"),
        env!("CARGO_BIN_EXE_cost-tags"),
    ] {
        let bytes = std::fs::read(exe).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"opt_out_cpu_jitter_get_seed"), "{exe}: aws-lc is not in it?");
        assert!(!has(b"jent_entropy_init"), "{exe} carries CPU jitter entropy");
    }
}
