//! A real Envoy (the sidecar's own config) in front of a test server.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{envoy_binary, free_port, repo_root};

pub struct Envoy {
    pub port: u16,
    admin_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with `envoy/envoy.yaml`, its ports replaced, in front of
    /// the tonic server on `upstream_port`, and waits until it is ready. Its
    /// console upstream (the docs page) is a port nothing listens on.
    pub async fn start(upstream_port: u16) -> Envoy {
        Envoy::start_with_console(upstream_port, free_port()).await
    }

    /// [`Envoy::start`], with the docs page's upstream the console listener
    /// on `console_port` (the server's CONSOLE_ADDR).
    pub async fn start_with_console(upstream_port: u16, console_port: u16) -> Envoy {
        let dir = tempfile::tempdir().unwrap();
        let descriptor = dir.path().join("fileorganizer.pb");
        std::fs::write(&descriptor, fileorganizer::pb::FILE_DESCRIPTOR_SET).unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let mut config = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml"))
            .unwrap()
            .replace("envoy/fileorganizer.pb", descriptor.to_str().unwrap());
        // Every port token becomes a placeholder first, so a port put in for one token is never
        // taken for another (an admin port 38081 once became 3<console port>).
        let ports = [
            ("50051", upstream_port),
            ("9901", admin_port),
            ("8080", port),
            ("8081", console_port),
        ];
        for (i, (token, _)) in ports.iter().enumerate() {
            config = config.replace(token, &format!("@port{i}@"));
        }
        for (i, (_, value)) in ports.iter().enumerate() {
            config = config.replace(&format!("@port{i}@"), &value.to_string());
        }
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let base_id = 1000 + (rand::random::<u32>() % 60_000);
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .args(["--base-id", &base_id.to_string(), "--log-level", "warn"])
            // Access-log lines within 0.1 s rather than Envoy's default 10 s ([`Envoy::log`]).
            .args(["--file-flush-interval-msec", "100"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start envoy");
        let mut envoy = Envoy {
            port,
            admin_port,
            child,
            _dir: dir,
        };
        envoy.wait_ready().await;
        envoy
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/ready", self.admin_port);
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self._dir.path().join("envoy.log")).unwrap_or_default();
                panic!("envoy exited with {status}: {log}");
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("envoy did not become ready");
    }

    /// What Envoy wrote so far: its warnings and its access log (stdout).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("envoy.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
