//! A real registry for the tests: Debian's `docker-registry` (the distribution project's
//! server) on 127.0.0.1 with a port of its own, optionally with TLS (a self-signed
//! certificate made with openssl) and basic auth (htpasswd). Stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "keel";
pub const PASSWORD: &str = "s3cret";

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls: bool,
    pub auth: bool,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Registry {
    pub fn start(tls: bool, auth: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-registry-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().display()
        );
        if tls {
            // A test CA and a certificate it signs for 127.0.0.1: the setup docker documents
            // for a private registry (certs.d/HOST/ca.crt). rustls, like browsers, refuses a
            // self-signed CA certificate used directly as the server's own.
            let path = |name: &str| dir.path().join(name);
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=keel-test-ca",
                ])
                .arg("-keyout")
                .arg(path("ca.key"))
                .arg("-out")
                .arg(path("ca.pem")));
            run(Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
                .arg("-keyout")
                .arg(path("key.pem"))
                .arg("-out")
                .arg(path("leaf.csr")));
            std::fs::write(
                path("leaf.ext"),
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
            )
            .expect("write ext");
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
                .arg("-in")
                .arg(path("leaf.csr"))
                .arg("-CA")
                .arg(path("ca.pem"))
                .arg("-CAkey")
                .arg(path("ca.key"))
                .arg("-extfile")
                .arg(path("leaf.ext"))
                .arg("-out")
                .arg(path("cert.pem")));
            config.push_str(&format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
                dir.path().display()
            ));
        }
        if auth {
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd");
            assert!(htpasswd.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: keel-test\n    path: {}/htpasswd\n",
                dir.path().display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let registry = Self {
            child,
            dir,
            port,
            tls,
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:PORT`, the registry part of image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the registry's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The blob data files the registry stores, largest first (layers before configs).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let root = self.dir.path().join("data/docker/registry/v2/blobs/sha256");
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|prefix| std::fs::read_dir(prefix.path()).into_iter().flatten().flatten())
            .map(|blob| blob.path().join("data"))
            .filter_map(|data| Some((std::fs::metadata(&data).ok()?.len(), data)))
            .collect();
        files.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        files.into_iter().map(|(_, path)| path).collect()
    }

    /// Where the registry keeps blob `hex`'s bytes (to corrupt one on purpose).
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// Pushes the image `tag` of the OCI layout at `layout` as `name` (with `--all` for an index).
    pub fn push(&self, layout: &Path, tag: &str, name: &str) {
        let mut skopeo = Command::new("skopeo");
        skopeo.args(["copy", "--quiet", "--all", "--insecure-policy"]);
        if self.tls {
            let certs = self.dir.path().join("certs.d");
            std::fs::create_dir_all(&certs).expect("mkdir");
            std::fs::copy(self.ca_cert(), certs.join("ca.crt")).expect("copy ca");
            skopeo.arg("--dest-cert-dir").arg(&certs);
        } else {
            skopeo.arg("--dest-tls-verify=false");
        }
        if self.auth {
            skopeo.args(["--dest-creds", &format!("{USER}:{PASSWORD}")]);
        }
        skopeo.arg(format!("oci:{}:{tag}", layout.display()));
        skopeo.arg(format!("docker://{}/{name}", self.host()));
        run(&mut skopeo);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
