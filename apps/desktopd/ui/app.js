// The status page: reads the daemon's control API (GET only) and keeps it live from the events
// stream, with a slow poll for counters and flows. Everything shown goes through textContent:
// host names, DNS names and answers come from guests.

const $ = (id) => document.getElementById(id);

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} m ${Math.floor((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.floor((ms % 3600000) / 60000)} m`;
}

/** Replaces a table's rows; each row is a list of [text, numeric?] cells. */
function fill(tableId, rows, emptyText) {
  const body = $(tableId).tBodies[0];
  const fresh = document.createElement("tbody");
  if (rows.length === 0) {
    const tr = fresh.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    td.textContent = emptyText;
  }
  for (const row of rows) {
    const tr = fresh.insertRow();
    for (const cell of row) {
      const td = tr.insertCell();
      const [text, numeric] = Array.isArray(cell) ? cell : [cell, false];
      td.textContent = String(text);
      if (numeric) td.className = "num";
    }
  }
  body.replaceWith(fresh);
}

function renderStatus(s) {
  const r = s.ready;
  const p = s.process;
  $("summary").textContent =
    `subnet ${r.subnet} · gateway ${r.gateway} · host ${r.host} · MTU ${r.mtu}` +
    (r.netns ? ` · netns ${r.netns}` : "") +
    (p ? ` · pid ${p.pid} · up ${duration(p.uptimeSeconds * 1000)} · RSS ${bytes(p.rss)}` : "");
  fill(
    "links",
    s.links.map((l) => [
      l.name,
      l.macs.join(", ") || "-",
      [l.stats.framesIn, true],
      [l.stats.framesOut, true],
      [bytes(l.stats.bytesIn), true],
      [bytes(l.stats.bytesOut), true],
      Object.entries(l.stats.drops)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ") || "-",
    ]),
    "no guest attached",
  );
  fill(
    "leases",
    s.leases.map((l) => [
      l.ip,
      l.mac,
      l.hostname ?? "",
      l.static ? "static" : new Date(l.expiresAt).toLocaleTimeString(),
    ]),
    "no leases",
  );
  renderPublished(s.published);
  const c = s.counters;
  const counters = $("counters");
  const fresh = document.createElement("dl");
  fresh.id = "counters";
  const add = (k, v) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    fresh.append(dt, dd);
  };
  add(
    "frames",
    `in ${c.frames.in} (${bytes(c.frames.bytesIn)}) · out ${c.frames.out} (${bytes(c.frames.bytesOut)})`,
  );
  add(
    "tcp",
    `open ${c.tcp.open} · opened ${c.tcp.opened} · refused ${c.tcp.refused} · reset ${c.tcp.reset} · retransmitted ${c.tcp.segmentsRetransmitted}`,
  );
  add(
    "udp",
    `open ${c.udp.open} · opened ${c.udp.opened} · datagrams in ${c.udp.datagramsIn} out ${c.udp.datagramsOut}`,
  );
  add("memory", `TCP buffers ${bytes(c.memory.usedBytes)} of ${bytes(c.memory.totalBytes)}`);
  add("egress", `allowed ${c.egress.allowed} · refused ${c.egress.denied}`);
  const drops = Object.entries(c.drops).sort((a, b) => b[1] - a[1]);
  add("drops", drops.map(([k, v]) => `${k} ${v}`).join(" · ") || "none");
  if (s.dns)
    add(
      "dns",
      `queries by layer: ${
        Object.entries(s.dns.layers ?? {})
          .map(([k, v]) => `${k} ${v}`)
          .join(" · ") || "none"
      }`,
    );
  if (s.proxy) {
    const p = s.proxy;
    add(
      "proxy",
      `${p.listen ?? "-"} · upstream ${p.summary} (${p.source}) · transparent ${
        p.transparentActive ? p.transparentPorts.join(",") : "off"
      }${p.socks5 ? ` · socks5 ${p.socks5}` : ""}`,
    );
  }
  counters.replaceWith(fresh);
}

function renderPublished(list) {
  fill(
    "published",
    list.map((f) => [
      f.label ? `${f.id} [${f.label}]` : f.id,
      `${f.targetIp ?? "?"}:${f.targetPort}`,
      [f.stats.open, true],
      [f.stats.accepted, true],
      [f.stats.dialFailures, true],
      [bytes(f.stats.bytesIn), true],
      [bytes(f.stats.bytesOut), true],
    ]),
    "nothing published",
  );
}

function renderFlows(flows) {
  $("flow-count").textContent = `(${flows.length})`;
  fill(
    "flows",
    flows
      .slice(0, 500)
      .map((f) => [
        f.protocol,
        f.guest,
        f.remote,
        f.state,
        f.service,
        [bytes(f.bytesFromGuest), true],
        [bytes(f.bytesToGuest), true],
        [duration(f.ageMs), true],
        [duration(f.idleMs), true],
      ]),
    "no open flows",
  );
}

function renderDns(log) {
  fill(
    "dns",
    log
      .slice()
      .reverse()
      .map((q) => [
        new Date(q.time).toLocaleTimeString(),
        q.client,
        q.name,
        q.type,
        q.answers.length > 0 ? q.answers.join(", ") : q.rcode,
        q.layer + (q.cached ? " (cached)" : ""),
        [`${q.latencyMs.toFixed(1)} ms`, true],
      ]),
    "no queries yet",
  );
}

async function refresh(parts) {
  try {
    if (parts.has("status")) renderStatus(await api("/v1/status"));
    else if (parts.has("publish")) renderPublished(await api("/v1/publish"));
    if (parts.has("flows")) renderFlows(await api("/v1/flows"));
    if (parts.has("dns")) renderDns(await api("/v1/dns/log?limit=50"));
  } catch (error) {
    $("summary").textContent = `cannot reach desktopd: ${error.message}`;
  }
}

const ALL = new Set(["status", "flows", "dns"]);
let pending = new Set();
let scheduled = false;
/** Coalesces bursts of events into one refresh per animation frame. */
function schedule(parts) {
  for (const p of parts) pending.add(p);
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const now = pending;
    pending = new Set();
    void refresh(now);
  });
}

const EVENT_PARTS = {
  "publish-added": ["publish"],
  "publish-removed": ["publish"],
  connection: ["publish", "flows"],
  "connection-closed": ["publish", "flows"],
  "dial-failed": ["publish"],
  "link-added": ["status"],
  "link-removed": ["status"],
  reloaded: ["status"],
};

function logEvent(event) {
  const li = document.createElement("li");
  const { type, time, ...rest } = event;
  li.textContent = `${new Date(time).toLocaleTimeString()} ${type} ${Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ")}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

/** Follows /v1/events (NDJSON) and reconnects after a pause when the stream ends. */
async function follow() {
  for (;;) {
    try {
      const res = await fetch("/v1/events", { credentials: "same-origin", cache: "no-store" });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      $("live").textContent = "live";
      $("live").classList.add("on");
      // Whatever happened while disconnected.
      schedule(ALL);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const lines = (partial + value).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          if (!line) continue;
          const event = JSON.parse(line);
          logEvent(event);
          schedule(EVENT_PARTS[event.type] ?? []);
        }
      }
    } catch {
      // Reconnect below.
    }
    $("live").textContent = "offline";
    $("live").classList.remove("on");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

void refresh(ALL);
void follow();
setInterval(() => schedule(ALL), 2000);
