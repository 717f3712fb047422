/**
 * The dashboard served at `GET /`: one self-contained page (inline CSS, script and
 * SVG; no CDN, no fonts, no internet) that polls `GET /v1/fleet` every second and
 * redraws without reloading:
 * - a world map (equirectangular, coarse continent outlines) with each relay at its
 *   coordinates, coloured by health (green healthy, amber draining, red unhealthy),
 *   and origins with known coordinates as diamonds;
 * - a table per relay: health, sessions/capacity, load, CPU, packets/s, heartbeat age,
 *   and RTT / jitter / loss to each origin it probes;
 * - small time-series graphs of RTT, jitter and loss per relay (last minutes) on a
 *   shared time axis, with the relay's events (up, draining, down, revoked) marked;
 * - the players view: per origin, the players (tunnel sessions that carried game data
 *   since the relay's previous heartbeat; a warm backup session is listed as a backup,
 *   never as a second player), FEC packets rebuilt, and the loss before and after FEC
 *   both ways over the lives of the sessions open now: upstream (player → relay, the
 *   relay's receivers) next to downstream (relay → player, the players' receivers as
 *   their FEC reports told the relay; "–" from relays that do not send it),
 *   fleet-wide and per relay, from the heartbeats' `status` (proto `RelayStatus`);
 *   stale relays are greyed and left out of the totals;
 * - the L4 rules of every relay with their origins' health (health checks passing or not);
 * - the relay-to-relay RTT matrix; the origins as the relays' probes see them;
 * - the recent events list; links to `/metrics` and `/health`.
 * A figure older than the relay's lease (`stale` in the fleet answer: a relay that
 * stopped heartbeating, an origin probe not renewed) is greyed and shows its age: it
 * is what the relay said then, not what it does now. Map labels that would overlap
 * (relays close together) are moved aside with a leader line to their dot.
 * All text from the API is escaped. Elements carry `data-relay-id`, `data-health` and
 * `data-stale` so tests can find them.
 */

/** Coarse continent outlines as [longitude, latitude] rings, degrees. Enough to recognise the world, no more. */
const CONTINENTS: readonly (readonly [number, number])[][] = [
  // North America
  [[-168, 66], [-162, 70], [-140, 70], [-125, 70], [-95, 72], [-80, 73], [-62, 66], [-56, 52], [-66, 45], [-70, 42], [-76, 35], [-81, 31], [-80, 25], [-82, 28], [-84, 30], [-90, 29], [-97, 27], [-97, 22], [-92, 18], [-88, 21], [-87, 16], [-83, 10], [-79, 9], [-81, 7], [-86, 12], [-92, 14], [-105, 20], [-110, 23], [-112, 29], [-115, 30], [-117, 33], [-121, 35], [-124, 40], [-124, 48], [-130, 55], [-140, 60], [-150, 60], [-158, 57], [-165, 60]],
  // Greenland
  [[-55, 60], [-44, 60], [-22, 70], [-18, 77], [-30, 83], [-60, 82], [-72, 78], [-58, 75], [-52, 68]],
  // South America
  [[-80, 9], [-75, 11], [-62, 11], [-52, 5], [-35, -5], [-39, -13], [-41, -22], [-48, -26], [-53, -34], [-58, -38], [-65, -41], [-66, -47], [-69, -52], [-72, -54], [-75, -50], [-73, -40], [-72, -30], [-70, -18], [-76, -14], [-81, -6], [-80, 0], [-77, 4]],
  // Eurasia
  [[-10, 36], [-9, 43], [-2, 43], [-5, 48], [2, 51], [8, 54], [8, 57], [11, 58], [5, 62], [12, 66], [18, 70], [28, 71], [40, 67], [44, 68], [60, 69], [70, 73], [80, 73], [100, 77], [112, 74], [130, 71], [150, 71], [160, 70], [170, 70], [180, 69], [180, 65], [172, 60], [163, 58], [156, 51], [156, 57], [143, 59], [137, 54], [141, 48], [135, 43], [129, 41], [129, 35], [126, 35], [126, 38], [121, 40], [122, 37], [119, 35], [122, 30], [118, 24], [110, 21], [108, 21], [106, 18], [109, 12], [105, 9], [100, 13], [100, 4], [104, 1], [100, 7], [98, 16], [94, 17], [92, 22], [88, 22], [80, 15], [77, 8], [73, 16], [72, 21], [67, 24], [58, 25], [56, 27], [50, 30], [48, 30], [50, 27], [56, 24], [59, 22], [52, 16], [43, 13], [39, 21], [35, 28], [34, 31], [36, 36], [28, 36], [26, 40], [23, 36], [20, 40], [13, 45], [18, 40], [16, 38], [12, 44], [8, 44], [3, 43], [0, 39], [-5, 36]],
  // Africa
  [[-17, 15], [-17, 21], [-13, 28], [-9, 32], [-6, 36], [10, 37], [11, 33], [20, 31], [30, 31], [33, 31], [35, 28], [39, 20], [43, 12], [51, 12], [48, 5], [40, -3], [40, -15], [35, -24], [32, -29], [27, -34], [20, -35], [18, -30], [12, -17], [14, -10], [12, -5], [9, 0], [9, 4], [5, 5], [-2, 5], [-8, 4], [-13, 8], [-17, 13]],
  // Australia
  [[114, -22], [114, -26], [115, -34], [118, -35], [124, -33], [132, -32], [138, -35], [141, -38], [146, -39], [150, -37], [153, -32], [153, -25], [146, -19], [142, -11], [141, -17], [136, -12], [131, -11], [126, -14], [122, -18]],
  // Great Britain, Ireland, Japan, Sumatra/Java, Borneo, New Zealand, Madagascar
  [[-5, 50], [1, 51], [2, 53], [-1, 55], [-2, 58], [-5, 58], [-6, 56], [-3, 54], [-5, 52]],
  [[-10, 52], [-6, 52], [-6, 55], [-10, 54]],
  [[130, 31], [135, 34], [140, 35], [142, 40], [141, 45], [145, 44], [140, 41], [139, 38], [136, 37], [132, 35]],
  [[95, 5], [105, -6], [115, -8], [120, -9], [119, -5], [110, -2], [104, 1]],
  [[109, 1], [118, 7], [119, 1], [116, -4], [110, -3]],
  [[172, -34], [178, -38], [176, -41], [171, -46], [167, -46], [172, -41]],
  [[44, -25], [49, -15], [50, -12], [47, -25]],
];

/** Map size in SVG user units (equirectangular: 2 units per degree). */
const MAP_WIDTH = 720;
const MAP_HEIGHT = 360;

function outlinePaths(): string {
  return CONTINENTS.map((ring) => `M${ring.map(([lon, lat]) => `${((lon + 180) * 2).toFixed(0)},${((90 - lat) * 2).toFixed(0)}`).join('L')}Z`).join('');
}

let cached: string | undefined;

/** The dashboard page (built once, then cached). */
export function dashboardHtml(): string {
  cached ??= PAGE.replace('__OUTLINE__', outlinePaths()).replaceAll('__W__', String(MAP_WIDTH)).replaceAll('__H__', String(MAP_HEIGHT));
  return cached;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Slipstream coordinator</title>
<style>
  :root { --bg:#0f1419; --panel:#172029; --line:#2a3642; --text:#d8e0e8; --dim:#8a99a8; --ok:#35c47a; --drain:#e9b44c; --bad:#e5534b; --accent:#5aa9e6; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text); font:13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display:flex; gap:24px; align-items:baseline; padding:12px 20px; border-bottom:1px solid var(--line); }
  header h1 { font-size:16px; margin:0; font-weight:600; }
  header .stat b { font-size:15px; }
  .ok { color:var(--ok); } .draining { color:var(--drain); } .unhealthy, .bad { color:var(--bad); }
  main { display:grid; grid-template-columns: minmax(520px, 1.2fr) minmax(380px, 1fr); gap:16px; padding:16px 20px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:12px; min-width:0; }
  section h2 { font-size:13px; margin:0 0 8px; color:var(--dim); font-weight:600; text-transform:uppercase; letter-spacing:.04em; }
  #map svg { width:100%; height:auto; display:block; }
  .land { fill:#25313c; stroke:#3a4856; stroke-width:.6; }
  .grid { stroke:#1f2a34; stroke-width:.5; fill:none; }
  .relay circle { stroke:#0f1419; stroke-width:1.2; }
  .relay.healthy circle { fill:var(--ok); } .relay.draining circle { fill:var(--drain); } .relay.unhealthy circle { fill:var(--bad); }
  .relay text, .origin text { fill:var(--text); font-size:8px; paint-order:stroke; stroke:#0f1419; stroke-width:2px; }
  .origin path { fill:var(--accent); stroke:#0f1419; stroke-width:1; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); white-space:nowrap; font-variant-numeric: tabular-nums; }
  th { color:var(--dim); font-weight:500; }
  td.num, th.num { text-align:right; }
  .pill { display:inline-block; padding:0 6px; border-radius:8px; font-size:11px; border:1px solid currentColor; }
  .wide { grid-column: 1 / -1; }
  .graphs { display:grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap:10px; }
  .graph { border:1px solid var(--line); border-radius:4px; padding:6px 8px; }
  .graph .title { display:flex; justify-content:space-between; font-weight:600; margin-bottom:2px; }
  .spark { display:flex; align-items:center; gap:6px; color:var(--dim); font-size:11px; }
  .spark svg { flex:1; height:26px; }
  .spark polyline { fill:none; stroke-width:1.3; }
  .spark .rtt { stroke:var(--accent); } .spark .jitter { stroke:var(--drain); } .spark .loss { stroke:var(--bad); }
  .spark span.v { width:64px; text-align:right; color:var(--text); }
  #matrix td { text-align:right; }
  .scroll { overflow:auto; max-height:420px; }
  #error { color:var(--bad); }
  .dim { color:var(--dim); }
  a { color:var(--accent); }
  tr.stale td { color:var(--dim); }
  .graph.stale .spark, .stale-fig { opacity:.5; }
  .age { color:var(--drain); font-size:11px; }
  .graph.stale { border-style:dashed; }
  .spark polyline.held { stroke-dasharray:2 2; opacity:.4; vector-effect:non-scaling-stroke; }
  .spark .mark { stroke-width:.8; vector-effect:non-scaling-stroke; }
  .mark.relayUp { stroke:var(--ok); } .mark.relayDraining { stroke:var(--drain); } .mark.relayDown, .mark.relayIdentityRevoked { stroke:var(--bad); } .mark.relayForgotten { stroke:var(--dim); }
  .axis { position:relative; height:14px; margin-left:30px; margin-right:70px; color:var(--dim); font-size:10px; border-top:1px solid var(--line); }
  .axis span { position:absolute; top:1px; transform:translateX(-50%); white-space:nowrap; }
  .leader { stroke:var(--dim); stroke-width:.6; }
  #events td.t { color:var(--dim); }
  #players tr.origin-total td { font-weight:600; border-top:1px solid var(--dim); }
  .origin-health { margin-right:8px; }
</style>
</head>
<body>
<header>
  <h1>Slipstream coordinator</h1>
  <span class="stat">relays <b id="count-healthy" class="ok">0</b> healthy · <b id="count-draining" class="draining">0</b> draining · <b id="count-unhealthy" class="unhealthy">0</b> unhealthy</span>
  <span class="stat">store <b id="store">…</b></span>
  <span class="stat">revocations <b id="revocations">0</b></span>
  <span class="stat dim" id="updated">waiting for data…</span>
  <span id="error"></span>
  <span class="stat" style="margin-left:auto"><a href="/metrics">/metrics</a> · <a href="/health">/health</a></span>
</header>
<main>
  <section id="map"><h2>Relays by location</h2>
    <svg viewBox="0 24 __W__ 280" role="img" aria-label="world map of relays">
      <g id="graticule"></g>
      <path class="land" d="__OUTLINE__"></path>
      <g id="leaders"></g>
      <g id="origins"></g>
      <g id="relays"></g>
    </svg>
  </section>
  <section><h2>Relay-to-relay RTT (ms)</h2><div class="scroll"><table id="matrix"></table></div></section>
  <section class="wide"><h2>Relays</h2><div class="scroll"><table id="relay-table"></table></div></section>
  <section class="wide"><h2>RTT, jitter and loss over the last minutes <span class="dim">(marks: green up, amber draining, red down or revoked)</span></h2><div class="graphs" id="graphs"></div></section>
  <section class="wide"><h2>Players <span class="dim">(per origin; a warm backup session is not a second player; FEC recovered: player → relay; loss before → after FEC, up (player → relay) and down (relay → player), over the sessions open now)</span></h2><div class="scroll"><table id="players"></table></div></section>
  <section class="wide"><h2>L4 rules and their origins' health</h2><div class="scroll"><table id="l4-rules"></table></div></section>
  <section><h2>Origins as the relays' probes see them</h2><div class="scroll"><table id="origin-table"></table></div></section>
  <section><h2>Recent events</h2><div class="scroll"><table id="events"></table></div></section>
</main>
<script>
"use strict";
(function () {
  var W = __W__, H = __H__;
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; }); }
  function x(lon) { return (lon + 180) / 360 * W; }
  function y(lat) { return (90 - lat) / 180 * H; }
  function f1(v) { return v == null ? "–" : v.toFixed(1); }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(v < 0.01 ? 2 : 1) + " %"; }
  function age(ms) { return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s"; }
  var grat = "";
  for (var lon = -150; lon <= 150; lon += 30) grat += '<line class="grid" x1="' + x(lon) + '" y1="0" x2="' + x(lon) + '" y2="' + H + '"/>';
  for (var lat = -60; lat <= 60; lat += 30) grat += '<line class="grid" x1="0" y1="' + y(lat) + '" x2="' + W + '" y2="' + y(lat) + '"/>';
  document.getElementById("graticule").innerHTML = grat;

  var EVENT_LABEL = { relayUp: "up", relayDraining: "draining", relayDown: "down (lease lapsed)", relayForgotten: "forgotten", relayIdentityRevoked: "identity revoked" };
  function clock(ms) { return new Date(ms).toLocaleTimeString(); }

  // Greedy label placement: each label takes the first candidate spot (right, left, above,
  // below, then further out with a leader line) whose box overlaps no placed label or dot.
  // Boxes are estimated (8 px font: about 4.7 units per character), which is enough here.
  function placeLabels(items) {
    var boxes = items.map(function (it) { return { x0: it.cx - 5, y0: it.cy - 5, x1: it.cx + 5, y1: it.cy + 5, own: it }; });
    function free(b, it) {
      for (var i = 0; i < boxes.length; i++) {
        var o = boxes[i];
        if (o.own === it) continue;
        if (b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) return false;
      }
      return true;
    }
    return items.map(function (it) {
      var w = it.text.length * 4.7, h = 9, spots = [[7, 3, "start"], [-7, 3, "end"], [0, -8, "middle"], [0, 12, "middle"]];
      for (var k = 1; k <= 6; k++) spots.push([12, 3 - k * 10, "start"], [12, 3 + k * 10, "start"], [-12, 3 - k * 10, "end"], [-12, 3 + k * 10, "end"]);
      var pick = spots[0], box = null;
      for (var s = 0; s < spots.length; s++) {
        var sp = spots[s], lx = it.cx + sp[0], ly = it.cy + sp[1];
        var x0 = sp[2] === "start" ? lx : sp[2] === "end" ? lx - w : lx - w / 2;
        var b = { x0: x0, y0: ly - h + 1, x1: x0 + w, y1: ly + 1, own: it };
        if (free(b, it)) { pick = sp; box = b; break; }
      }
      if (!box) { var x0f = it.cx + 7; box = { x0: x0f, y0: it.cy - 5, x1: x0f + w, y1: it.cy + 4, own: it }; }
      boxes.push(box);
      var far = Math.abs(pick[1] - 3) > 9 || Math.abs(pick[0]) > 7;
      return { x: it.cx + pick[0], y: it.cy + pick[1], anchor: pick[2], leader: far ? '<line class="leader" x1="' + it.cx.toFixed(1) + '" y1="' + it.cy.toFixed(1) + '" x2="' + (it.cx + pick[0]).toFixed(1) + '" y2="' + (it.cy + pick[1] - 3).toFixed(1) + '"/>' : "" };
    });
  }

  function render(fleet) {
    var counts = { healthy: 0, draining: 0, unhealthy: 0 }, lease = fleet.leaseMs, now = fleet.nowMs;
    fleet.relays.forEach(function (r) { counts[r.health]++; });
    ["healthy", "draining", "unhealthy"].forEach(function (h) { document.getElementById("count-" + h).textContent = counts[h]; });
    var st = document.getElementById("store");
    st.textContent = fleet.store.kind + (fleet.store.ok ? " ok" : " unreachable");
    st.className = fleet.store.ok ? "ok" : "bad";
    document.getElementById("revocations").textContent = fleet.revocations;
    document.getElementById("updated").textContent = "updated " + clock(now) + " · lease " + age(lease);

    var mapOrigins = fleet.origins.filter(function (o) { return o.latitude != null; });
    var items = fleet.relays.map(function (r) { return { cx: x(r.longitude), cy: y(r.latitude), text: r.relayId }; })
      .concat(mapOrigins.map(function (o) { return { cx: x(o.longitude), cy: y(o.latitude), text: o.name }; }));
    var spots = placeLabels(items), leaders = "";
    function label(i) {
      var p = spots[i];
      leaders += p.leader;
      return '<text x="' + p.x.toFixed(1) + '" y="' + p.y.toFixed(1) + '" text-anchor="' + p.anchor + '">' + esc(items[i].text) + "</text>";
    }
    document.getElementById("relays").innerHTML = fleet.relays.map(function (r, i) {
      var tip = r.relayId + " (" + r.region + "): " + r.health + (r.stale ? ", last heartbeat " + age(r.lastHeartbeatAgeMs) + " ago" : "");
      return '<g class="relay ' + r.health + '" data-relay-id="' + esc(r.relayId) + '" data-health="' + esc(r.health) + '" data-stale="' + r.stale + '"><title>' + esc(tip) + '</title><circle cx="' + items[i].cx.toFixed(1) + '" cy="' + items[i].cy.toFixed(1) + '" r="5"/>' + label(i) + "</g>";
    }).join("");
    document.getElementById("origins").innerHTML = mapOrigins.map(function (o, k) {
      var i = fleet.relays.length + k, cx = items[i].cx, cy = items[i].cy;
      return '<g class="origin"><title>origin ' + esc(o.name) + '</title><path d="M' + cx + "," + (cy - 5) + "L" + (cx + 5) + "," + cy + "L" + cx + "," + (cy + 5) + "L" + (cx - 5) + "," + cy + 'Z"/>' + label(i) + "</g>";
    }).join("");
    document.getElementById("leaders").innerHTML = leaders;

    var rows = fleet.relays.map(function (r) {
      var load = r.capacitySessions > 0 ? r.load.sessions / r.capacitySessions : 1;
      var fig = r.stale ? function (v) { return '<span class="stale-fig">' + v + "</span>"; } : function (v) { return v; };
      var origins = r.origins.length === 0 ? '<span class="dim">no origin probes</span>' : r.origins.map(function (o) {
        var t = esc(o.origin) + ": " + f1(o.rttMs) + " ms / " + f1(o.jitterMs) + " ms / " + pct(o.lossFraction);
        return o.stale ? '<span class="stale-fig" data-stale="true">' + t + '</span> <span class="age">' + age(o.ageMs) + " old</span>" : t;
      }).join("<br>");
      var staleTag = r.stale ? ' <span class="age stale-age">stale · ' + age(r.lastHeartbeatAgeMs) + " old</span>" : "";
      return '<tr class="' + (r.stale ? "stale" : "") + '" data-relay-id="' + esc(r.relayId) + '" data-health="' + esc(r.health) + '" data-stale="' + r.stale + '"><td>' + esc(r.relayId) + "</td><td>" + esc(r.region) + '</td><td class="health"><span class="pill ' + (r.health === "healthy" ? "ok" : esc(r.health)) + '">' + esc(r.health) + "</span>" + staleTag + '</td><td class="num">' + fig(r.load.sessions + " / " + r.capacitySessions) + '</td><td class="num">' + fig(pct(Math.max(load, r.load.cpuFraction))) + '</td><td class="num">' + fig(pct(r.load.cpuFraction)) + '</td><td class="num">' + fig(Math.round(r.load.packetsPerSecond)) + '</td><td class="num hb' + (r.stale ? " age" : "") + '">' + age(r.lastHeartbeatAgeMs) + "</td><td>" + origins + "</td></tr>";
    }).join("");
    document.getElementById("relay-table").innerHTML = '<tr><th>relay</th><th>region</th><th>health</th><th class="num">sessions</th><th class="num">load</th><th class="num">CPU</th><th class="num">packets/s</th><th class="num">heartbeat age</th><th>to origins: RTT / jitter / loss</th></tr>' + (rows || '<tr><td colspan="9" class="dim">no relays registered</td></tr>');

    var m = fleet.mesh, head = "<tr><th></th>" + m.relayIds.map(function (id) { return "<th>" + esc(id) + "</th>"; }).join("") + "</tr>";
    document.getElementById("matrix").innerHTML = head + m.relayIds.map(function (from, i) {
      return "<tr><th>" + esc(from) + "</th>" + m.rttMs[i].map(function (v, j) {
        var loss = m.lossFraction[i][j];
        return '<td class="' + (loss != null && loss > 0.01 ? "bad" : "") + '">' + (i === j ? "·" : f1(v)) + "</td>";
      }).join("") + "</tr>";
    }).join("");

    // One time window for every graph: from the oldest sample any relay has to now.
    var t0 = now;
    fleet.relays.forEach(function (r) { if (r.history.tMs.length > 0 && r.history.tMs[0] < t0) t0 = r.history.tMs[0]; });
    var span = Math.max(now - t0, 10000);
    t0 = now - span;
    function tx(t) { return ((t - t0) / span * 100).toFixed(2); }
    var stepMs = span > 600000 ? 300000 : span > 240000 ? 60000 : span > 60000 ? 30000 : 10000, ticks = "";
    for (var back = 0; back <= span; back += stepMs) ticks += '<span style="left:' + tx(now - back) + '%">' + (back === 0 ? "now" : "−" + (back >= 60000 ? (back / 60000) + " min" : (back / 1000) + " s")) + "</span>";
    var axis = '<div class="axis">' + ticks + "</div>";
    // heldFromMs: samples after it were taken once the relay's lease had lapsed (the
    // coordinator still held its last figures): drawn dashed and dim, not as live.
    function spark(cls, h, values, label, fmt, floor, marks, heldFromMs) {
      var pts = [], held = [], max = floor, last = null;
      for (var i = 0; i < values.length; i++) if (values[i] != null && values[i] > max) max = values[i];
      for (var j = 0; j < values.length; j++) {
        if (values[j] == null) continue;
        var pt = tx(h.tMs[j]) + "," + (24 - values[j] / max * 22).toFixed(1);
        if (h.tMs[j] > heldFromMs) { if (held.length === 0 && pts.length > 0) held.push(pts[pts.length - 1]); held.push(pt); } else { pts.push(pt); last = values[j]; }
      }
      return '<div class="spark">' + label + '<svg viewBox="0 0 100 26" preserveAspectRatio="none">' + marks + '<polyline class="' + cls + '" points="' + pts.join(" ") + '"/>' + (held.length > 0 ? '<polyline class="' + cls + ' held" points="' + held.join(" ") + '"/>' : "") + '</svg><span class="v">' + fmt(last) + "</span></div>";
    }
    document.getElementById("graphs").innerHTML = fleet.relays.map(function (r) {
      var h = r.history, marks = fleet.events.filter(function (e) { return e.relayId === r.relayId && e.atMs >= t0; }).map(function (e) {
        return '<line class="mark ' + esc(e.type) + '" data-event-type="' + esc(e.type) + '" x1="' + tx(e.atMs) + '" y1="0" x2="' + tx(e.atMs) + '" y2="26"><title>' + esc(clock(e.atMs) + " " + (EVENT_LABEL[e.type] || e.type)) + "</title></line>";
      }).join("");
      var heldFrom = now - r.lastHeartbeatAgeMs + lease;
      var state = r.stale ? '<span class="age">stale · ' + age(r.lastHeartbeatAgeMs) + " old</span>" : '<span class="' + (r.health === "healthy" ? "ok" : esc(r.health)) + '">' + esc(r.health) + "</span>";
      return '<div class="graph' + (r.stale ? " stale" : "") + '" data-relay-id="' + esc(r.relayId) + '" data-stale="' + r.stale + '"><div class="title"><span>' + esc(r.relayId) + "</span>" + state + "</div>" +
        spark("rtt", h, h.rttMs, "RTT", function (v) { return f1(v) + " ms"; }, 10, marks, heldFrom) + spark("jitter", h, h.jitterMs, "jit", function (v) { return f1(v) + " ms"; }, 2, marks, heldFrom) + spark("loss", h, h.lossFraction, "loss", pct, 0.01, marks, heldFrom) + axis + "</div>";
    }).join("");

    // Origins: every figure a relay has for it; fresh = within the lease.
    var byOrigin = {};
    fleet.origins.forEach(function (o) { byOrigin[o.name] = []; });
    fleet.relays.forEach(function (r) { r.origins.forEach(function (o) { (byOrigin[o.origin] = byOrigin[o.origin] || []).push({ relayId: r.relayId, fig: o, fresh: !o.stale && !r.stale }); }); });
    var orows = Object.keys(byOrigin).sort().map(function (name) {
      var seen = byOrigin[name], fresh = seen.filter(function (s) { return s.fresh; }), best = null;
      fresh.forEach(function (s) { if (best === null || s.fig.rttMs < best.fig.rttMs) best = s; });
      var status = fresh.length > 0 ? '<span class="ok">probed by ' + fresh.length + "</span>" : seen.length > 0 ? '<span class="age">only stale figures</span>' : '<span class="dim">no probes</span>';
      return '<tr data-origin="' + esc(name) + '"><td>' + esc(name) + "</td><td>" + status + "</td><td>" + (best ? esc(best.relayId) + ": " + f1(best.fig.rttMs) + " ms / " + pct(best.fig.lossFraction) : "–") + "</td></tr>";
    }).join("");
    document.getElementById("origin-table").innerHTML = "<tr><th>origin</th><th>probes within the lease</th><th>best relay: RTT / loss</th></tr>" + (orows || '<tr><td colspan="3" class="dim">no origins</td></tr>');

    // Players: per origin, the live relays' figures summed (stale relays greyed, not summed).
    var players = {}, withStatus = 0;
    fleet.relays.forEach(function (r) {
      var st = r.load.status;
      if (!st) return;
      withStatus++;
      st.origins.forEach(function (o) { (players[o.origin] = players[o.origin] || []).push({ r: r, o: o }); });
      if (st.otherPlayers + st.otherBackups > 0) (players["(other origins)"] = players["(other origins)"] || []).push({ r: r, o: { origin: "(other origins)", players: st.otherPlayers, backups: st.otherBackups, fecRecovered: 0, lossBeforeFec: 0, lossAfterFec: 0, other: true } });
    });
    var prows = Object.keys(players).sort().map(function (name) {
      var list = players[name], sum = { players: 0, backups: 0, rec: 0 };
      list.forEach(function (e) { if (!e.r.stale) { sum.players += e.o.players; sum.backups += e.o.backups; sum.rec += e.o.fecRecovered; } });
      var total = '<tr class="origin-total" data-origin="' + esc(name) + '" data-players="' + sum.players + '" data-backups="' + sum.backups + '"><td>' + esc(name) + '</td><td class="dim">all live relays</td><td class="num players">' + sum.players + '</td><td class="num backups">' + sum.backups + '</td><td class="num">' + sum.rec + "</td><td></td><td></td></tr>";
      return total + list.map(function (e) {
        var o = e.o, tag = e.r.stale ? ' <span class="age">stale · ' + age(e.r.lastHeartbeatAgeMs) + " old</span>" : "";
        return '<tr class="' + (e.r.stale ? "stale" : "") + '" data-origin="' + esc(name) + '" data-relay-id="' + esc(e.r.relayId) + '" data-players="' + o.players + '" data-backups="' + o.backups + '" data-stale="' + e.r.stale + '"><td></td><td>' + esc(e.r.relayId) + tag + '</td><td class="num">' + o.players + '</td><td class="num">' + o.backups + '</td><td class="num">' + o.fecRecovered + '</td><td class="num loss">' + (o.other ? "–" : pct(o.lossBeforeFec) + " → " + pct(o.lossAfterFec)) + '</td><td class="num loss-down">' + (o.other || typeof o.downLossBeforeFec !== "number" || typeof o.downLossAfterFec !== "number" ? "–" : pct(o.downLossBeforeFec) + " → " + pct(o.downLossAfterFec)) + "</td></tr>";
      }).join("");
    }).join("");
    document.getElementById("players").innerHTML = '<tr><th>origin</th><th>relay</th><th class="num">players</th><th class="num">backup sessions</th><th class="num">FEC recovered</th><th class="num" title="player → relay, as the relay’s FEC receivers saw it: before → after FEC">loss up</th><th class="num" title="relay → player, as the players’ FEC receivers reported it: before → after FEC">loss down</th></tr>' + (prows || '<tr><td colspan="7" class="dim">' + (withStatus > 0 ? "no players" : "no relay sends player figures (relays before this version do not)") + "</td></tr>");

    var lrows = [];
    fleet.relays.forEach(function (r) {
      var st = r.load.status;
      if (!st) return;
      st.rules.forEach(function (rule) {
        var origins = rule.origins.map(function (o) { return '<span class="origin-health pill ' + (o.healthy ? "ok" : "bad") + '" data-origin="' + esc(o.origin) + '" data-healthy="' + o.healthy + '">' + esc(o.origin) + (o.healthy ? " up" : " down") + "</span>"; }).join("") || '<span class="dim">no origins</span>';
        lrows.push('<tr class="' + (r.stale ? "stale" : "") + '" data-relay-id="' + esc(r.relayId) + '" data-rule="' + esc(rule.rule) + '" data-stale="' + r.stale + '"><td>' + esc(r.relayId) + "</td><td>" + esc(rule.rule) + "</td><td>" + esc(rule.protocol) + "</td><td>" + esc(rule.listen) + "</td><td>" + esc(rule.group) + '</td><td class="num sessions">' + rule.sessions + '</td><td class="' + (r.stale ? "stale-fig" : "") + '">' + origins + "</td></tr>");
      });
    });
    document.getElementById("l4-rules").innerHTML = '<tr><th>relay</th><th>rule</th><th>protocol</th><th>listen</th><th>origin group</th><th class="num">flows</th><th>origins (health checks)</th></tr>' + (lrows.join("") || '<tr><td colspan="7" class="dim">no L4 rules reported</td></tr>');

    var evs = fleet.events.slice().reverse();
    document.getElementById("events").innerHTML = "<tr><th>when</th><th>relay</th><th>what</th></tr>" + (evs.map(function (e) {
      return '<tr data-event-type="' + esc(e.type) + '" data-relay-id="' + esc(e.relayId) + '"><td class="t">' + esc(clock(e.atMs)) + " (" + age(Math.max(0, now - e.atMs)) + " ago)</td><td>" + esc(e.relayId) + '</td><td class="mark-text ' + esc(e.type) + '">' + esc(EVENT_LABEL[e.type] || e.type) + "</td></tr>";
    }).join("") || '<tr><td colspan="3" class="dim">no events since this coordinator started</td></tr>');
  }

  var busy = false;
  function tick() {
    if (busy) return;
    busy = true;
    fetch("/v1/fleet", { cache: "no-store" }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (fleet) {
      document.getElementById("error").textContent = "";
      render(fleet);
    }).catch(function (e) {
      document.getElementById("error").textContent = "coordinator unreachable: " + e.message;
    }).then(function () { busy = false; });
  }
  tick();
  setInterval(tick, 1000);
})();
</script>
</body>
</html>
`;
