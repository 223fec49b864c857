"""The operator page served at `/` by the status server: one self-contained HTML document.

Everything is inline (CSS, JavaScript, the trend drawn on a canvas, system fonts only), so the page works
on a line PC with no internet. It polls the JSON endpoints (status each second, recent results and the
trend every two) and shows, for a person glancing from the conveyor: the state in a coloured banner
(READY green, FAULT red, STALE amber, STOPPED grey; DISCONNECTED when the run's server no longer answers),
the live stream, counters, the score trend with its threshold, the last NG frames, and latency. Element
ids are stable: the browser tests and a plant's screen scrapers may rely on them.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ddad-edge line</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#16181c;color:#e8e8e8}
#banner{padding:10px 18px;display:flex;align-items:baseline;gap:18px;background:#555}
#state{font-size:40px;font-weight:800;letter-spacing:1px}
#reason{font-size:18px}
body[data-state=READY] #banner{background:#1d7a36} body[data-state=FAULT] #banner{background:#b3221b}
body[data-state=STALE] #banner{background:#c98a00;color:#111} body[data-state=STOPPED] #banner{background:#555}
body[data-state=DISCONNECTED] #banner{background:#444;color:#ccc} body[data-state=STARTING] #banner{background:#345}
#info{font-size:13px;color:#b8b8b8;padding:6px 18px;border-bottom:1px solid #333}
main{display:grid;grid-template-columns:minmax(280px,1.2fr) 1fr;gap:12px;padding:12px 18px}
h2{font-size:13px;text-transform:uppercase;color:#999;margin:4px 0 6px}
#stream{width:100%;max-height:46vh;object-fit:contain;background:#000;border:1px solid #333;min-height:120px}
.counters{display:grid;grid-template-columns:repeat(4,1fr);gap:6px}
.c{background:#22252b;border-radius:4px;padding:6px 8px}.c b{display:block;font-size:26px}
.c span{font-size:12px;color:#aaa}.ng b{color:#ff6b5e}.ok b{color:#6bdc84}.fault b{color:#ffb347}
#trend{width:100%;height:150px;background:#1d1f24;border:1px solid #333}
#ngs{display:flex;flex-wrap:wrap;gap:6px}
#ngs a{display:block;background:#22252b;padding:3px;border-radius:3px;color:#ddd;text-decoration:none;font-size:12px}
#ngs img{display:block;height:64px}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px 2px 0;text-align:right}th{color:#999}
td:first-child,th:first-child{text-align:left}
#notes{font-size:12px;color:#aaa;max-height:70px;overflow:auto}
</style></head>
<body data-state="STARTING">
<div id="banner"><span id="state">STARTING</span><span id="reason">waiting for the first frame</span></div>
<div id="info">source <b id="source">-</b> &middot; bundle <b id="bundle">-</b> &middot; uptime <b id="uptime">-</b>
 &middot; last frame <b id="age">-</b> &middot; <b id="fps">-</b> frames/s</div>
<main>
<section><h2>Live</h2><img id="stream" src="/stream.mjpg" alt="live stream (not available)">
<h2>Score trend, last 5 minutes (max per second; red line: threshold)</h2><canvas id="trend"></canvas></section>
<section>
<h2>Counters</h2><div class="counters">
<div class="c"><b id="c-frames">0</b><span>frames</span></div><div class="c ok"><b id="c-OK">0</b><span>OK</span></div>
<div class="c ng"><b id="c-NG">0</b><span>NG</span></div><div class="c fault"><b id="c-FAULT">0</b><span>FAULT</span></div>
<div class="c"><b id="c-dropped">0</b><span>dropped</span></div><div class="c"><b id="yield">-</b><span>yield %</span></div>
<div class="c"><b id="p-fired">-</b><span>pulses fired</span></div><div class="c"><b id="p-merged">-</b><span>merged</span></div>
<div class="c"><b id="p-cancelled">-</b><span>cancelled</span></div>
<div class="c fault"><b id="c-missed">0</b><span>missed rejects</span></div>
<div class="c"><b id="p-requested">0</b><span>pulses planned</span></div></div>
<h2>Last NG frames (click: saved image)</h2><div id="ngs"></div>
<h2>Latency, last minute (ms)</h2><table id="latency"><tr><th>stage</th><th>p50</th><th>p99</th></tr></table>
<h2>Notes</h2><div id="notes"></div>
</section></main>
<script>
"use strict";
const $ = id => document.getElementById(id);
let failures = 0, lastOk = 0;
function text(id, v){ const e = $(id); const s = (v === null || v === undefined) ? "-" : String(v);
  if (e.textContent !== s) e.textContent = s; }
function setState(state, reason){ document.body.dataset.state = state; text("state", state); text("reason", reason || ""); }
async function get(path){ const r = await fetch(path, {cache: "no-store"}); if (!r.ok) throw new Error(r.status); return r.json(); }
function dur(s){ s = Math.round(s); const h = Math.floor(s/3600), m = Math.floor(s%3600/60);
  return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (s%60) + " s"; }
async function status(){
  try {
    const j = await get("/status.json"); failures = 0; lastOk = Date.now();
    setState(j.state, j.reason);
    const b = j.bundle;
    text("source", j.source);
    text("bundle", [b.name, b.precision, b.steps === null || b.steps === undefined ? null : b.steps + " steps",
                    b.backend, "threshold " + b.threshold].filter(x => x).join(", "));
    text("uptime", dur(j.uptime_s)); text("age", j.last_frame_age_s === null ? "-" : j.last_frame_age_s.toFixed(1) + " s ago");
    text("fps", j.fps === null ? "-" : j.fps.toFixed(1));
    for (const k of ["frames", "OK", "NG", "FAULT", "dropped"]) text("c-" + k, j[k]);
    text("c-missed", j.missed_rejects); text("yield", j.yield_pct === null ? "-" : j.yield_pct.toFixed(1));
    for (const k of ["requested", "fired", "merged", "cancelled"]) text("p-" + k, j.pulses[k]);
    const rows = ["<tr><th>stage</th><th>p50</th><th>p99</th></tr>"];
    for (const [k, v] of Object.entries(j.latency_ms))
      rows.push("<tr><td>" + (k === "latency" ? "capture&rarr;verdict" : k) + "</td><td>" + v.p50.toFixed(1) +
                "</td><td>" + v.p99.toFixed(1) + "</td></tr>");
    const html = rows.join(""); if ($("latency").innerHTML !== html) $("latency").innerHTML = html;
    $("notes").textContent = j.notes.slice().reverse().map(n => new Date(n.wall_time*1000).toLocaleTimeString() +
                                                           "  " + n.message).join("\\n");
    $("notes").style.whiteSpace = "pre-line";
  } catch (e) {
    failures += 1;
    if (failures >= 2) setState("DISCONNECTED", "the status server does not answer: the loop has stopped, " +
                                "or this screen lost the network (last answer " +
                                (lastOk ? Math.round((Date.now()-lastOk)/1000) + " s ago)" : "never)"));
  }
}
async function recent(){
  try {
    const j = await get("/recent.json");
    const box = $("ngs"), seqs = j.ng.map(n => String(n.seq));
    if (Array.from(box.children).map(a => a.dataset.seq).join() === seqs.join()) return;
    box.textContent = "";
    for (const n of j.ng) {
      const a = document.createElement("a"); a.dataset.seq = n.seq; a.className = "ngthumb";
      if (n.image) { a.href = n.image; a.target = "_blank"; } else a.title = n.image_note || "no saved image";
      const img = document.createElement("img"); img.src = n.thumbnail; img.alt = "NG frame " + n.seq;
      const cap = document.createElement("div");
      cap.textContent = "#" + n.seq + "  " + (n.score === null ? "-" : n.score.toFixed(3)) + "  " +
                        new Date(n.wall_time*1000).toLocaleTimeString();
      a.append(img, cap); box.append(a);
    }
  } catch (e) {}
}
async function trend(){
  try {
    const j = await get("/trend.json?minutes=5"), c = $("trend"), g = c.getContext("2d");
    c.width = c.clientWidth; c.height = c.clientHeight;
    const w = c.width, h = c.height, now = Date.now()/1000;
    // a run younger than the window fills the canvas from its first point
    const t0 = j.points.length ? Math.max(now - j.seconds, j.points[0].t - 1) : now - j.seconds, span = now - t0;
    const th = typeof j.threshold === "number" ? j.threshold : null;
    let top = th === null ? 0 : th * 1.5;
    for (const p of j.points) top = Math.max(top, p.max * 1.1);
    top = top || 1;
    const x = t => (t - t0) / span * w, y = v => h - 4 - v / top * (h - 8);
    g.clearRect(0, 0, w, h); g.lineWidth = 1.5;
    g.strokeStyle = "#6aa7ff"; g.beginPath();
    j.points.forEach((p, i) => i ? g.lineTo(x(p.t), y(p.max)) : g.moveTo(x(p.t), y(p.max))); g.stroke();
    g.strokeStyle = "#8b8b8b"; g.beginPath();
    j.points.forEach((p, i) => i ? g.lineTo(x(p.t), y(p.mean)) : g.moveTo(x(p.t), y(p.mean))); g.stroke();
    g.fillStyle = "#ff6b5e"; for (const p of j.points) if (p.ng) g.fillRect(x(p.t) - 2, y(p.max) - 2, 4, 4);
    if (th !== null) { g.strokeStyle = "#ff4136"; g.setLineDash([6, 4]); g.beginPath(); g.moveTo(0, y(th));
      g.lineTo(w, y(th)); g.stroke(); g.setLineDash([]); g.fillStyle = "#ff4136"; g.font = "12px sans-serif";
      g.fillText("threshold " + th, 4, y(th) - 4); }
    c.dataset.points = j.points.length;
  } catch (e) {}
}
status(); recent(); trend();
setInterval(status, 1000); setInterval(recent, 2000); setInterval(trend, 2000);
</script></body></html>
"""
