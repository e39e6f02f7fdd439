//! A Redis Cluster of real `redis-server --cluster-enabled yes` processes on
//! 127.0.0.1, made with `redis-cli --cluster create`, for the fleet tests
//! and the fleet benchmark.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::{Instant, sleep, timeout};

use super::temp_dir::TempDir;

/// The ACL user every node has (the default user is off).
pub const REDIS_USER: &str = "fleet";
pub const REDIS_PASSWORD: &str = "fleet-password";
/// How long nodes take to call a silent node failing: a replica takes
/// over its dead primary about 1.5 to 2 s after it died.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(300);
/// No step (a start, a `redis-cli` call, a failover) may take longer.
const STEP_LIMIT: Duration = Duration::from_secs(30);

type Outcome = Result<(), String>;

/// A Redis Cluster of `redis-server --cluster-enabled yes` processes on free
/// 127.0.0.1 ports, made with `redis-cli --cluster create`, with the
/// scenarios' ACL user (the default user is off); every node killed and its
/// directory removed when dropped.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: TempDir,
    /// With TLS: the certificate every node presents (PEM, for
    /// 127.0.0.1), which clients must trust.
    pub certificate: Option<String>,
}

pub struct ClusterNode {
    pub port: u16,
    bus_port: u16,
    child: Option<std::process::Child>,
    /// Stopped with `SIGSTOP`: asked nothing until resumed.
    frozen: AtomicBool,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, every replica
    /// in sync and every node agreeing that the cluster is up.
    pub async fn start(primaries: usize, replicas: usize) -> Result<Self, String> {
        Self::start_with(primaries, replicas, false).await
    }

    /// A cluster whose nodes speak only TLS, to clients and to each other,
    /// with a self-signed certificate ([`Self::certificate`]).
    pub async fn start_tls(primaries: usize, replicas: usize) -> Result<Self, String> {
        Self::start_with(primaries, replicas, true).await
    }

    async fn start_with(primaries: usize, replicas: usize, tls: bool) -> Result<Self, String> {
        let dir = TempDir::new("fleet-cluster");
        let certificate = if tls {
            let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                .map_err(|e| e.to_string())?;
            std::fs::write(dir.join("node.key"), certified.signing_key.serialize_pem())
                .map_err(|e| e.to_string())?;
            let certificate = certified.cert.pem();
            std::fs::write(dir.join("node.crt"), &certificate).map_err(|e| e.to_string())?;
            Some(certificate)
        } else {
            None
        };
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
            certificate,
        };
        // Ports held until all are chosen, so that no two are the same.
        let listeners = (0..primaries * (1 + replicas) * 2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        drop(listeners);
        for pair in ports.chunks(2) {
            cluster.nodes.push(ClusterNode {
                port: pair[0],
                bus_port: pair[1],
                child: None,
                frozen: AtomicBool::new(false),
            });
        }
        for node in 0..cluster.nodes.len() {
            cluster.spawn(node)?;
        }
        for node in &cluster.nodes {
            wait_for_port(node.port).await?;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        cluster.cli(&args).await?;
        cluster.wait_until_up().await?;
        Ok(cluster)
    }

    fn spawn(&mut self, node: usize) -> Result<(), String> {
        let binary = which("redis-server").ok_or("redis-server not found")?;
        let node_dir = self.dir.join(&format!("node-{node}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        let ClusterNode { port, bus_port, .. } = self.nodes[node];
        let mut command = std::process::Command::new(binary);
        if self.certificate.is_some() {
            command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .args(["--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(self.dir.join("node.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("node.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("node.crt"));
        } else {
            command.args(["--port", &port.to_string()]);
        }
        let child = with_fleet_user(&mut command)
            .current_dir(&node_dir)
            .args(["--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &bus_port.to_string()])
            .args([
                "--cluster-node-timeout",
                &CLUSTER_NODE_TIMEOUT.as_millis().to_string(),
            ])
            // A replica takes over however long it was cut off.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--masteruser", REDIS_USER, "--masterauth", REDIS_PASSWORD])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start redis-server: {error}"))?;
        self.nodes[node].child = Some(child);
        self.nodes[node].frozen.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Kills a node at once (no shutdown, no save).
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts every stopped node again on its ports, with its cluster
    /// configuration (`nodes.conf`) but no data.
    pub async fn restart_all(&mut self) -> Outcome {
        for node in 0..self.nodes.len() {
            if self.nodes[node].child.is_none() {
                self.spawn(node)?;
            }
        }
        for node in &self.nodes {
            wait_for_port(node.port).await?;
        }
        self.wait_until_up().await
    }

    /// Every live node says `cluster_state:ok`, and every live replica is
    /// in sync with its primary.
    pub async fn wait_until_up(&self) -> Outcome {
        let deadline = Instant::now() + STEP_LIMIT;
        'wait: loop {
            if Instant::now() >= deadline {
                return Err("the cluster did not come up".to_owned());
            }
            sleep(Duration::from_millis(50)).await;
            for (node, _) in self.live() {
                let info = self.cli_at(node, &["cluster", "info"]).await?;
                if !info.contains("cluster_state:ok") {
                    continue 'wait;
                }
                let replication = self.cli_at(node, &["info", "replication"]).await?;
                if replication.contains("role:slave")
                    && !replication.contains("master_link_status:up")
                {
                    continue 'wait;
                }
            }
            return Ok(());
        }
    }

    /// The nodes running and not frozen.
    fn live(&self) -> impl Iterator<Item = (usize, &ClusterNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.child.is_some() && !node.frozen.load(Ordering::SeqCst))
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| {
                let scheme = if self.certificate.is_some() {
                    "rediss"
                } else {
                    "redis"
                };
                format!(
                    "{scheme}://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
                    node.port
                )
            })
            .collect()
    }

    /// A worker's store: every node a seed.
    pub fn store_spec(&self, key: &str) -> String {
        format!("cluster={}|{key}", self.urls().join(","))
    }

    /// The node (index) that is the primary serving `key`'s slot, as a live
    /// node sees it.
    pub async fn primary_of(&self, key: &str) -> Result<usize, String> {
        let (asked, _) = self.live().next().ok_or("no live node")?;
        let slot: u16 = self
            .cli_at(asked, &["cluster", "keyslot", key])
            .await?
            .parse()
            .map_err(|_| "slot")?;
        let nodes = self.cli_at(asked, &["cluster", "nodes"]).await?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-').map(str::parse::<u16>);
                match (ends.next(), ends.next()) {
                    (Some(Ok(low)), Some(Ok(high))) => (low..=high).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|port| port.parse().ok())
                    .ok_or_else(|| format!("address {}", fields[1]))?;
                return self
                    .nodes
                    .iter()
                    .position(|node| node.port == port)
                    .ok_or_else(|| format!("unknown node {port}"));
            }
        }
        Err(format!("no primary serves slot {slot}"))
    }

    /// Waits until a node other than `old` serves `key`'s slot.
    pub async fn wait_for_promotion(&self, key: &str, old: usize) -> Result<usize, String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if let Ok(node) = self.primary_of(key).await
                && node != old
            {
                return Ok(node);
            }
            if Instant::now() >= deadline {
                return Err("no replica was promoted".to_owned());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn node_id(&self, node: usize) -> Result<String, String> {
        self.cli_at(node, &["cluster", "myid"]).await
    }

    /// A replica (index) of the primary `node`.
    pub async fn replica_of(&self, node: usize) -> Result<usize, String> {
        let id = self.node_id(node).await?;
        let nodes = self.cli_at(node, &["cluster", "nodes"]).await?;
        let port = nodes
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.len() > 3 && fields[2].contains("slave") && fields[3] == id)
            .and_then(|fields| fields[1].split(['@', ':']).nth(1)?.parse::<u16>().ok())
            .ok_or_else(|| format!("node {node} has no replica"))?;
        self.nodes
            .iter()
            .position(|node| node.port == port)
            .ok_or_else(|| format!("unknown node {port}"))
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) a node's process: a node
    /// that answers nothing, without closing its connections. A frozen
    /// node is asked nothing (by [`primary_of`](Self::primary_of), the
    /// waits) until resumed.
    pub fn freeze(&self, node: usize, frozen: bool) -> Outcome {
        let pid = self.nodes[node]
            .child
            .as_ref()
            .ok_or("node not running")?
            .id()
            .to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("kill {signal} {pid}: {status}"));
        }
        self.nodes[node].frozen.store(frozen, Ordering::SeqCst);
        Ok(())
    }

    /// `redis-cli` as the scenarios' user, against the first live node.
    pub async fn cli(&self, args: &[&str]) -> Result<String, String> {
        let (node, _) = self.live().next().ok_or("no live node")?;
        self.cli_at(node, args).await
    }

    /// `redis-cli` against `node`: its output (trimmed), or an error with
    /// what it said when it failed or printed an error reply.
    pub async fn cli_at(&self, node: usize, args: &[&str]) -> Result<String, String> {
        run_cli(self.cli_command_at(node, args), args).await
    }

    pub fn cli_command(&self, args: &[&str]) -> Command {
        let node = self.live().next().map_or(0, |(node, _)| node);
        self.cli_command_at(node, args)
    }

    fn cli_command_at(&self, node: usize, args: &[&str]) -> Command {
        let mut command = redis_cli(self.nodes[node].port, REDIS_USER, REDIS_PASSWORD);
        if self.certificate.is_some() {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(self.dir.join("node.crt"));
        }
        command.args(args);
        command
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in 0..self.nodes.len() {
            self.kill(node);
        }
    }
}

/// `redis-cli` against the server on `port` as `user`, with no command yet.
pub fn redis_cli(port: u16, user: &str, password: &str) -> Command {
    let mut command = Command::new(which("redis-cli").unwrap_or_else(|| "redis-cli".into()));
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", user, "--no-auth-warning"])
        // The password through the environment, not the command line.
        .env("REDISCLI_AUTH", password)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `redis-cli` (with `args`): its output (trimmed), or an error with
/// what it said when it failed or printed an error reply (a redirection
/// too, `MOVED` from a cluster replica asked a write, which would
/// otherwise pass for an answer).
pub async fn run_cli(mut command: Command, args: &[&str]) -> Result<String, String> {
    const ERROR_REPLIES: [&str; 10] = [
        "ERR",
        "CROSSSLOT",
        "MOVED",
        "ASK",
        "READONLY",
        "CLUSTERDOWN",
        "LOADING",
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
    ];
    let output = timeout(STEP_LIMIT, command.output())
        .await
        .map_err(|_| format!("redis-cli {args:?} did not finish"))?
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let error_reply = ERROR_REPLIES
        .iter()
        .any(|prefix| stdout.starts_with(prefix));
    if !output.status.success() || error_reply {
        return Err(format!(
            "redis-cli {args:?}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout)
}

pub async fn wait_for_port(port: u16) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() >= deadline {
            return Err(format!("redis-server did not start on port {port}"));
        }
        sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The settings every test server has: no persistence, quiet logs, the
/// default user off and `REDIS_USER` allowed the fleet's keys (`fleet:*`,
/// and `{fleet:*` as a cluster store tags them).
pub fn with_fleet_user(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .args(["--user", "default", "off"])
        .args([
            "--user",
            REDIS_USER,
            "on",
            &format!(">{REDIS_PASSWORD}"),
            "~fleet:*",
            "~{fleet:*",
            "+@all",
        ])
}

/// `binary` on the `PATH` (or in /usr/bin, /usr/sbin).
pub fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}
