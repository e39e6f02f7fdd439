//! A primary with replicas watched by three Redis Sentinels, all real
//! `redis-server` processes on 127.0.0.1 (the sentinels run with
//! `--sentinel`), for the fleet tests.
//!
//! Three sets of credentials, as in a real deployment: the data nodes'
//! [`REDIS_USER`] (the store's primary user, and the replicas' to their
//! primary), the user the sentinels watch the data nodes with
//! ([`MONITOR_USER`], allowed only what Sentinel needs) and the sentinels'
//! own user ([`SENTINEL_USER`], which clients and the sentinels among
//! themselves log in with). Every default user is off.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::redis_cluster::{
    REDIS_PASSWORD, REDIS_USER, redis_cli, run_cli, wait_for_port, which, with_fleet_user,
};
use super::temp_dir::TempDir;

/// The name the sentinels know the primary by.
pub const PRIMARY_NAME: &str = "fleet-primary";
/// The sentinels' own ACL user: clients (the store, `redis-cli`) and the
/// sentinels among themselves log in with it.
pub const SENTINEL_USER: &str = "fleet-sentinels";
pub const SENTINEL_PASSWORD: &str = "sentinels-password";
/// A sentinel user for clients with only what `RedisStore`'s documentation
/// asks for.
pub const CLIENT_USER: &str = "fleet-client";
/// A sentinel user for clients allowed `SENTINEL MASTER` only.
pub const NARROW_USER: &str = "fleet-narrow";
/// [`CLIENT_USER`]'s and [`NARROW_USER`]'s.
pub const CLIENT_PASSWORD: &str = "client-password";
/// The data nodes' user for the sentinels (`sentinel auth-user`), with the
/// commands and channel the Redis documentation lists for it.
pub const MONITOR_USER: &str = "fleet-monitor";
pub const MONITOR_PASSWORD: &str = "monitor-password";
/// How long the sentinels wait before calling a silent primary down: they
/// promote a replica about 1.5 to 2 s after the primary died.
pub const DOWN_AFTER: Duration = Duration::from_millis(400);
/// A failover that stalls is given up (and may be tried again after
/// twice this).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(3);
const SENTINELS: usize = 3;
/// No step (a start, a `redis-cli` call, a failover) may take longer.
const STEP_LIMIT: Duration = Duration::from_secs(30);

type Outcome = Result<(), String>;

/// A data node or a sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A data node: 0 is the first primary, the others its replicas.
    Data(usize),
    Sentinel(usize),
}

/// One primary, its replicas and three sentinels (quorum 2), on free
/// 127.0.0.1 ports; every process killed and its directory removed when
/// dropped.
pub struct RedisSentinel {
    pub data: Vec<Process>,
    pub sentinels: Vec<Process>,
    dir: TempDir,
}

pub struct Process {
    pub port: u16,
    child: Option<std::process::Child>,
    /// Stopped with `SIGSTOP`: not asked anything until resumed.
    frozen: AtomicBool,
}

impl Process {
    fn new(port: u16) -> Self {
        Self {
            port,
            child: None,
            frozen: AtomicBool::new(false),
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    fn answering(&self) -> bool {
        self.running() && !self.frozen.load(Ordering::SeqCst)
    }
}

impl RedisSentinel {
    /// A primary with `replicas` replicas and three sentinels, every
    /// replica in sync and every sentinel knowing the primary, each
    /// replica and the two other sentinels.
    pub async fn start(replicas: usize) -> Result<Self, String> {
        let dir = TempDir::new("fleet-sentinel");
        // Ports held until all are chosen, so that no two are the same.
        let listeners = (0..1 + replicas + SENTINELS)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        drop(listeners);
        let sentinel_ports = ports.split_off(1 + replicas);
        let mut deployment = Self {
            data: ports.into_iter().map(Process::new).collect(),
            sentinels: sentinel_ports.into_iter().map(Process::new).collect(),
            dir,
        };
        for node in 0..deployment.data.len() {
            deployment.spawn(Node::Data(node))?;
        }
        for node in &deployment.data {
            wait_for_port(node.port).await?;
        }
        for sentinel in 0..SENTINELS {
            deployment.write_sentinel_config(sentinel)?;
            deployment.spawn(Node::Sentinel(sentinel))?;
        }
        for sentinel in &deployment.sentinels {
            wait_for_port(sentinel.port).await?;
        }
        deployment.wait_until_up().await?;
        Ok(deployment)
    }

    /// Each sentinel's configuration, written once: a sentinel rewrites
    /// its own (its id, the replicas and sentinels it learnt, the epoch),
    /// and starts again from it after a restart.
    fn write_sentinel_config(&self, sentinel: usize) -> Outcome {
        let primary = self.data[0].port;
        let config = format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             loglevel warning\n\
             user default off\n\
             user {SENTINEL_USER} on >{SENTINEL_PASSWORD} allchannels +@all\n\
             user {CLIENT_USER} on >{CLIENT_PASSWORD} +sentinel|master \
             +sentinel|get-master-addr-by-name\n\
             user {NARROW_USER} on >{CLIENT_PASSWORD} +sentinel|master\n\
             sentinel sentinel-user {SENTINEL_USER}\n\
             sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
             sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {PRIMARY_NAME} {down_after}\n\
             sentinel failover-timeout {PRIMARY_NAME} {failover_timeout}\n\
             sentinel auth-user {PRIMARY_NAME} {MONITOR_USER}\n\
             sentinel auth-pass {PRIMARY_NAME} {MONITOR_PASSWORD}\n",
            port = self.sentinels[sentinel].port,
            down_after = DOWN_AFTER.as_millis(),
            failover_timeout = FAILOVER_TIMEOUT.as_millis(),
        );
        let dir = self.dir.join(&format!("sentinel-{sentinel}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("sentinel.conf"), config).map_err(|e| e.to_string())
    }

    fn spawn(&mut self, node: Node) -> Outcome {
        let binary = which("redis-server").ok_or("redis-server not found")?;
        let mut command = std::process::Command::new(binary);
        match node {
            Node::Data(index) => {
                let dir = self.dir.join(&format!("node-{index}"));
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                with_fleet_user(&mut command)
                    .current_dir(&dir)
                    .args(["--port", &self.data[index].port.to_string()])
                    .args(["--bind", "127.0.0.1"])
                    .args([
                        "--user",
                        MONITOR_USER,
                        "on",
                        &format!(">{MONITOR_PASSWORD}"),
                        "allchannels",
                        "+multi",
                        "+slaveof",
                        "+ping",
                        "+exec",
                        "+subscribe",
                        "+config|rewrite",
                        "+role",
                        "+publish",
                        "+info",
                        "+client|setname",
                        "+client|kill",
                        "+script|kill",
                    ])
                    .args(["--masteruser", REDIS_USER, "--masterauth", REDIS_PASSWORD]);
                if index > 0 {
                    // A replica of the first primary; one started again
                    // after a failover is made a replica of the new one by
                    // the sentinels.
                    command.args(["--replicaof", "127.0.0.1", &self.data[0].port.to_string()]);
                }
            }
            Node::Sentinel(index) => {
                let dir = self.dir.join(&format!("sentinel-{index}"));
                command
                    .current_dir(&dir)
                    .arg(dir.join("sentinel.conf"))
                    .arg("--sentinel");
            }
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start redis-server: {error}"))?;
        let process = self.process(node);
        process.frozen.store(false, Ordering::SeqCst);
        process.child = Some(child);
        Ok(())
    }

    fn process(&mut self, node: Node) -> &mut Process {
        match node {
            Node::Data(index) => &mut self.data[index],
            Node::Sentinel(index) => &mut self.sentinels[index],
        }
    }

    fn process_ref(&self, node: Node) -> &Process {
        match node {
            Node::Data(index) => &self.data[index],
            Node::Sentinel(index) => &self.sentinels[index],
        }
    }

    /// Kills a process at once (no shutdown, no save).
    pub fn kill(&mut self, node: Node) {
        if let Some(mut child) = self.process(node).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts every stopped process again on its port: data nodes with no
    /// data and the replication they started with, sentinels from their
    /// own (rewritten) configuration. Then waits as [`start`](Self::start)
    /// does.
    pub async fn restart_all(&mut self) -> Outcome {
        let stopped: Vec<Node> = self
            .nodes()
            .into_iter()
            .filter(|node| !self.process_ref(*node).running())
            .collect();
        for node in stopped {
            self.spawn(node)?;
            wait_for_port(self.process_ref(node).port).await?;
        }
        self.wait_until_up().await
    }

    fn nodes(&self) -> Vec<Node> {
        let data = (0..self.data.len()).map(Node::Data);
        data.chain((0..self.sentinels.len()).map(Node::Sentinel))
            .collect()
    }

    /// Every answering sentinel names the same answering primary, calls it
    /// up, knows the other sentinels and every answering replica up and in
    /// sync with it; and every answering replica says its link to that
    /// primary is up.
    pub async fn wait_until_up(&self) -> Outcome {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let why = match self.up().await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(format!("the sentinels' deployment did not come up: {why}"));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    async fn up(&self) -> Outcome {
        let primary = self.primary().await?;
        let replicas: Vec<usize> = (0..self.data.len())
            .filter(|node| *node != primary && self.data[*node].answering())
            .collect();
        for (sentinel, _) in self.answering_sentinels() {
            let asked = Node::Sentinel(sentinel);
            let port = self
                .cli_at(
                    asked,
                    &["sentinel", "get-master-addr-by-name", PRIMARY_NAME],
                )
                .await?;
            if port.lines().nth(1) != Some(self.data[primary].port.to_string().as_str()) {
                return Err(format!("sentinel {sentinel} names {port:?}"));
            }
            let master = fields(
                &self
                    .cli_at(asked, &["sentinel", "master", PRIMARY_NAME])
                    .await?,
            );
            let flags = master.first().and_then(|m| m.get("flags").cloned());
            if flags.as_deref() != Some("master") {
                return Err(format!("sentinel {sentinel}: primary flags {flags:?}"));
            }
            let others = master
                .first()
                .and_then(|m| m.get("num-other-sentinels").cloned());
            if others != Some((SENTINELS - 1).to_string()) {
                return Err(format!(
                    "sentinel {sentinel} knows {others:?} other sentinels"
                ));
            }
            let known = fields(
                &self
                    .cli_at(asked, &["sentinel", "replicas", PRIMARY_NAME])
                    .await?,
            );
            for replica in &replicas {
                let port = self.data[*replica].port.to_string();
                let in_sync = known.iter().any(|r| {
                    r.get("port") == Some(&port)
                        && r.get("flags").map(String::as_str) == Some("slave")
                        && r.get("master-link-status").map(String::as_str) == Some("ok")
                });
                if !in_sync {
                    return Err(format!(
                        "sentinel {sentinel} does not know replica {replica} in sync"
                    ));
                }
            }
        }
        for replica in replicas {
            let info = self
                .cli_at(Node::Data(replica), &["info", "replication"])
                .await?;
            let primary_port = format!("master_port:{}", self.data[primary].port);
            if !info.contains("master_link_status:up") || !info.contains(&primary_port) {
                return Err(format!("replica {replica} is not in sync: {info}"));
            }
        }
        Ok(())
    }

    fn answering_sentinels(&self) -> impl Iterator<Item = (usize, &Process)> {
        self.sentinels
            .iter()
            .enumerate()
            .filter(|(_, sentinel)| sentinel.answering())
    }

    /// The primary (data node index) as the first answering sentinel names
    /// it (`SENTINEL get-master-addr-by-name`).
    pub async fn primary(&self) -> Result<usize, String> {
        let (sentinel, _) = self
            .answering_sentinels()
            .next()
            .ok_or("no sentinel answers")?;
        self.primary_by(sentinel).await
    }

    async fn primary_by(&self, sentinel: usize) -> Result<usize, String> {
        let address = self
            .cli_at(
                Node::Sentinel(sentinel),
                &["sentinel", "get-master-addr-by-name", PRIMARY_NAME],
            )
            .await?;
        let port: u16 = address
            .lines()
            .nth(1)
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| format!("sentinel {sentinel} answered {address:?}"))?;
        self.data
            .iter()
            .position(|node| node.port == port)
            .ok_or_else(|| format!("sentinel {sentinel} names unknown port {port}"))
    }

    /// Waits until every answering sentinel names the same primary other
    /// than `old`, and that node says it is a primary (`ROLE`).
    pub async fn wait_for_promotion(&self, old: usize) -> Result<usize, String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if let Ok(promoted) = self.agreed_primary().await
                && promoted != old
                && self
                    .cli_at(Node::Data(promoted), &["role"])
                    .await
                    .is_ok_and(|role| role.starts_with("master"))
            {
                return Ok(promoted);
            }
            if Instant::now() >= deadline {
                return Err(format!("the sentinels promoted no replica of {old}"));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    async fn agreed_primary(&self) -> Result<usize, String> {
        let mut named = Vec::new();
        for (sentinel, _) in self.answering_sentinels() {
            named.push(self.primary_by(sentinel).await?);
        }
        match named.first() {
            Some(first) if named.iter().all(|node| node == first) => Ok(*first),
            _ => Err(format!("the sentinels name {named:?}")),
        }
    }

    /// Waits until data node `node` is a replica of `primary`, in sync.
    ///
    /// A primary that comes back after a failover is made a replica by the
    /// sentinels, but not at once: they look at it every 10 s, and wait
    /// 8 s (four hello periods) after they see it claim to be a primary,
    /// for news of a newer configuration. Hence a longer limit than a
    /// step's. Making it a replica closes its clients' connections
    /// (`CLIENT KILL TYPE normal`), `redis-cli`'s too: a failed look is
    /// looked again.
    pub async fn wait_for_replica(&self, node: usize, primary: usize) -> Outcome {
        let deadline = Instant::now() + STEP_LIMIT * 2;
        let primary_port = format!("master_port:{}", self.data[primary].port);
        loop {
            let info = self
                .cli_at(Node::Data(node), &["info", "replication"])
                .await;
            if let Ok(info) = &info
                && info.contains("role:slave")
                && info.contains(&primary_port)
                && info.contains("master_link_status:up")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "data node {node} did not become a replica of {primary}: {info:?}"
                ));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// A replica (index) of the primary `node`, up and in sync with it.
    pub async fn replica_of(&self, node: usize) -> Result<usize, String> {
        let primary_port = format!("master_port:{}", self.data[node].port);
        for (replica, process) in self.data.iter().enumerate() {
            if replica == node || !process.answering() {
                continue;
            }
            let info = self
                .cli_at(Node::Data(replica), &["info", "replication"])
                .await?;
            if info.contains(&primary_port) && info.contains("master_link_status:up") {
                return Ok(replica);
            }
        }
        Err(format!("data node {node} has no replica in sync"))
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) a process: one that
    /// answers nothing, without closing its connections. A frozen process
    /// is asked nothing (by [`primary`](Self::primary), the waits) until
    /// resumed.
    /// Stops (or resumes) every sentinel.
    pub fn freeze_sentinels(&self, frozen: bool) -> Outcome {
        (0..self.sentinels.len())
            .try_for_each(|sentinel| self.freeze(Node::Sentinel(sentinel), frozen))
    }

    pub fn freeze(&self, node: Node, frozen: bool) -> Outcome {
        let process = self.process_ref(node);
        let pid = process
            .child
            .as_ref()
            .ok_or("process not running")?
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
        process.frozen.store(frozen, Ordering::SeqCst);
        Ok(())
    }

    /// The sentinels' addresses, with their user.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_urls_as(SENTINEL_USER, SENTINEL_PASSWORD)
    }

    /// The sentinels' addresses, with `user`.
    pub fn sentinel_urls_as(&self, user: &str, password: &str) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("redis://{user}:{password}@127.0.0.1:{}", sentinel.port))
            .collect()
    }

    /// A worker's store: every sentinel, the primary's name, `key`.
    pub fn store_spec(&self, key: &str) -> String {
        format!(
            "sentinel={}|{PRIMARY_NAME}|{key}",
            self.sentinel_urls().join(",")
        )
    }

    /// `redis-cli` against `node` (a data node as [`REDIS_USER`], a
    /// sentinel as [`SENTINEL_USER`]): its output (trimmed), or an error
    /// with what it said when it failed or printed an error reply.
    pub async fn cli_at(&self, node: Node, args: &[&str]) -> Result<String, String> {
        let (user, password) = match node {
            Node::Data(_) => (REDIS_USER, REDIS_PASSWORD),
            Node::Sentinel(_) => (SENTINEL_USER, SENTINEL_PASSWORD),
        };
        let mut command = redis_cli(self.process_ref(node).port, user, password);
        command.args(args);
        run_cli(command, args)
            .await
            .map_err(|error| format!("{node:?}: {error}"))
    }
}

/// `redis-cli`'s lines of a list of records (`SENTINEL master`, `SENTINEL
/// replicas`: each a flat list of names and values, printed one a line)
/// as one map per record, each starting at its `name`.
fn fields(output: &str) -> Vec<std::collections::HashMap<String, String>> {
    let lines: Vec<&str> = output.lines().collect();
    let mut records = Vec::new();
    for pair in lines.chunks(2) {
        let [name, value] = pair else { break };
        if *name == "name" || records.is_empty() {
            records.push(std::collections::HashMap::new());
        }
        if let Some(record) = records.last_mut() {
            record.insert((*name).to_owned(), (*value).to_owned());
        }
    }
    records
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for node in self.nodes() {
            self.kill(node);
        }
    }
}
