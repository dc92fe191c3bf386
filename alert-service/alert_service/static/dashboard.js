// Live dashboard of the alert-service. Plain JavaScript, no build step, no outside requests.
//
// Data flow: /api/v1/alerts/stream delivers new alerts as server-sent events, read with
// fetch() so that the X-API-Key header goes with it (an EventSource cannot send headers,
// and a key in the URL would land in logs); the frames are parsed here, and a reconnect
// names the last alert seen in Last-Event-ID so the server replays what was missed.
// Once the stream is open, /api/v1/alerts loads the stored ones (older, appended below,
// deduplicated by alertId).
// Arriving alerts are queued and drawn together in one animation frame, at most every
// 100 ms (250 ms during a burst): 100 alerts/s cost four DOM insertions a second, and the
// feed never holds more than FEED_MAX rows.
// /api/v1/stats is polled for the per-second chart and the throughput figures.
// API key: when the service answers 401 the page stops, asks for the key once, keeps it in
// sessionStorage (this tab only, gone when it closes) and sends it with every request.
// The case queue, the case page and the rules panel are cases.js's (window.FraudDashboard).
"use strict";

(() => {
  const FEED_MAX = 200;
  const SEEN_MAX = 5000;
  const INITIAL_LIMIT = 1000;
  const STATS_SECONDS = 300;
  const STATS_POLL_MS = 1500;
  const RATE_SECONDS = 10;
  // Feed updates: at most ten a second, and four during a burst (every update shifts and
  // repaints the visible rows, which is the main cost when 100 alerts/s arrive).
  const FLUSH_INTERVAL_MS = 100;
  const BURST_INTERVAL_MS = 250;
  const FLASH_MAX = 3; // a batch larger than this is a burst: no highlight animation
  const USER_ID = /^[A-Za-z0-9_.:@-]{1,64}$/;
  const KEY_STORAGE = "fraud-alerts.api-key";
  const BACKOFF_MAX_MS = 15000;

  const TYPES = {
    large_transaction_detected: "Large amount",
    multiple_rapid_transactions_detected: "Rapid transactions",
    unusual_location_change_detected: "Location change",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"),
    statusText: $("status-text"),
    filter: $("filter"),
    user: $("user"),
    clear: $("clear"),
    feed: $("feed"),
    empty: $("empty"),
    feedMeta: $("feed-meta"),
    feedScope: $("feed-scope"),
    pause: $("pause"),
    types: $("types"),
    typesScope: $("types-scope"),
    chart: $("chart"),
    chartNote: $("chart-note"),
    tps: $("kpi-tps"),
    aps: $("kpi-aps"),
    txTotal: $("kpi-tx-total"),
    alertTotal: $("kpi-alert-total"),
    alertRate: $("kpi-alert-rate"),
    rowTemplate: $("row-template"),
    typeTemplate: $("type-template"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyNote: $("key-note"),
  };

  const state = {
    userId: "",
    generation: 0, // bumped on every (re)subscription; late answers of older ones are dropped
    source: null, // the AbortController of the open stream request
    reconnectTimer: 0,
    reconnectDelay: 1000,
    retryMs: 2000, // the stream's "retry:" field: the wait before reconnecting a dropped stream
    locked: false, // waiting for an API key: nothing is requested meanwhile
    key: "", // the key given in this page, in case sessionStorage is unavailable
    statsTimer: 0,
    initialLoaded: false,
    lastId: "",
    seen: new Set(),
    pending: [], // alerts waiting for the next frame, oldest first
    frame: 0,
    timer: 0,
    lastFlush: -Infinity,
    lastBatch: 0, // alerts drawn by the last update: more than FLASH_MAX means a burst
    paused: false,
    counts: new Map(), // alertType -> count of the alerts in this view
    typeRows: new Map(), // alertType -> <li>
    total: 0,
    oldest: Infinity, // time (ms) of the oldest alert counted: the counts cover since then
    received: 0, // live alerts received since the page opened
    stats: null,
    hoverX: null, // pointer position over the chart (CSS px), or null
  };

  // ---------------------------------------------------------------- formatting

  const number = new Intl.NumberFormat();
  const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const clock = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const dayClock = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
  });
  const money = new Map();

  function typeLabel(type) {
    return TYPES[type] || String(type).replace(/_detected$/, "").replace(/_/g, " ")
      .replace(/^./, (c) => c.toUpperCase());
  }

  function formatAmount(amount, currency) {
    let format = money.get(currency);
    if (format === undefined) {
      try {
        format = new Intl.NumberFormat(undefined, { style: "currency", currency });
      } catch (error) {
        format = null; // not a currency this browser knows: show the code as text
      }
      money.set(currency, format);
    }
    // Amounts travel as decimal strings; Intl formats a string without float round-off.
    return format ? format.format(amount) : `${amount} ${currency}`;
  }

  function typeDetail(alert) {
    const d = alert.details || {};
    switch (alert.alertType) {
      case "large_transaction_detected":
        return d.threshold !== undefined ? `over ${number.format(d.threshold)} USD` : "";
      case "multiple_rapid_transactions_detected":
        return d.count !== undefined ? `${d.count} in ${d.time_window ?? d.threshold_time} s` : "";
      case "unusual_location_change_detected":
        return d.distance_km !== undefined ? `${number.format(Math.round(d.distance_km))} km` : "";
      default:
        return "";
    }
  }

  // ---------------------------------------------------------------- status

  function setStatus(kind, text) {
    el.status.dataset.state = kind;
    el.statusText.textContent = text;
  }

  // ---------------------------------------------------------------- feed

  function buildRow(alert) {
    const row = el.rowTemplate.content.firstElementChild.cloneNode(true);
    const txn = alert.transaction || {};
    const severity = String(alert.severity || "unknown").toLowerCase();
    row.dataset.severity = severity;
    row.dataset.type = alert.alertType;
    row.dataset.alertId = alert.alertId;
    if (alert.message) row.title = alert.message;

    const time = row.querySelector(".c-time");
    const when = new Date(alert.timestamp);
    time.dateTime = alert.timestamp;
    time.textContent = Number.isNaN(when.getTime()) ? "–" : clock.format(when);

    const pill = row.querySelector(".pill");
    pill.textContent = severity;
    pill.parentElement.dataset.severity = severity;

    row.querySelector(".type-label").textContent = typeLabel(alert.alertType);
    const detail = typeDetail(alert);
    if (detail) row.querySelector(".type-detail").textContent = `· ${detail}`;

    const user = row.querySelector(".user-link");
    user.textContent = txn.userId || "–";
    user.dataset.userId = txn.userId || "";

    row.querySelector(".c-amount").textContent =
      txn.amount !== undefined ? formatAmount(txn.amount, txn.currency || "") : "–";

    const place = row.querySelector(".c-place");
    const d = alert.details || {};
    if (alert.alertType === "unusual_location_change_detected" && d.previous_location) {
      place.append(String(d.previous_location));
      const arrow = document.createElement("span");
      arrow.className = "arrow";
      arrow.textContent = "→";
      place.append(arrow, String(d.current_location || txn.location || ""));
    } else {
      place.textContent = txn.location || "–";
    }
    place.title = place.textContent;
    return row;
  }

  function remember(alert) {
    if (!alert || !alert.alertId || state.seen.has(alert.alertId)) return false;
    state.seen.add(alert.alertId);
    if (state.seen.size > SEEN_MAX) {
      state.seen.delete(state.seen.values().next().value); // oldest first
    }
    state.total += 1;
    state.counts.set(alert.alertType, (state.counts.get(alert.alertType) || 0) + 1);
    const when = Date.parse(alert.timestamp);
    if (when < state.oldest) state.oldest = when;
    return true;
  }

  function receive(alert) {
    if (!remember(alert)) return;
    state.received += 1;
    state.pending.push(alert);
    if (state.pending.length > FEED_MAX) state.pending.splice(0, state.pending.length - FEED_MAX);
    schedule();
  }

  // The next update runs in an animation frame, and not before its interval has passed
  // since the last one (a timer waits out the rest: no frames are requested meanwhile).
  function schedule() {
    if (state.frame || state.timer) return;
    const interval = state.lastBatch > FLASH_MAX ? BURST_INTERVAL_MS : FLUSH_INTERVAL_MS;
    const wait = state.lastFlush + interval - performance.now();
    if (wait > 0) {
      state.timer = setTimeout(() => {
        state.timer = 0;
        state.frame = requestAnimationFrame(flush);
      }, wait);
    } else {
      state.frame = requestAnimationFrame(flush);
    }
  }

  function flush(now) {
    state.frame = 0;
    state.lastFlush = now;
    state.lastBatch = state.pending.length;
    if (!state.paused && state.pending.length) {
      const batch = document.createDocumentFragment();
      const settled = state.pending.length > FLASH_MAX;
      for (let i = state.pending.length - 1; i >= 0; i -= 1) {
        const row = buildRow(state.pending[i]);
        if (settled) row.classList.add("settled");
        batch.append(row);
      }
      state.pending = [];
      el.feed.prepend(batch);
      trimFeed();
    }
    renderCounts();
    renderFeedMeta();
  }

  function trimFeed() {
    while (el.feed.childElementCount > FEED_MAX) el.feed.lastElementChild.remove();
    el.empty.hidden = el.feed.childElementCount > 0;
  }

  function appendOlder(alerts) {
    const batch = document.createDocumentFragment();
    let room = FEED_MAX - el.feed.childElementCount - state.pending.length;
    for (const alert of alerts) {
      if (!remember(alert)) continue;
      if (room > 0) {
        const row = buildRow(alert);
        row.classList.add("settled"); // stored before the page opened: no arrival flash
        batch.append(row);
        room -= 1;
      }
    }
    el.feed.append(batch);
    trimFeed();
    schedule();
  }

  function renderFeedMeta() {
    const shown = el.feed.childElementCount;
    const waiting = state.pending.length;
    el.feedMeta.textContent = state.paused && waiting
      ? `${number.format(waiting)} new while paused`
      : `${number.format(shown)} shown · ${number.format(state.received)} live since opened`;
    el.pause.textContent = state.paused ? "Resume" : "Pause";
  }

  // ---------------------------------------------------------------- counts per type

  function typeRow(type) {
    let row = state.typeRows.get(type);
    if (!row) {
      row = el.typeTemplate.content.firstElementChild.cloneNode(true);
      row.dataset.type = type;
      row.querySelector(".type-name").textContent = typeLabel(type);
      state.typeRows.set(type, row);
      el.types.insertBefore(row, el.types.querySelector(".types-total"));
    }
    return row;
  }

  function resetCounts() {
    el.types.replaceChildren();
    state.typeRows.clear();
    for (const type of Object.keys(TYPES)) typeRow(type);
    const total = document.createElement("li");
    total.className = "types-total";
    const label = document.createElement("span");
    label.textContent = "Total";
    total.append(label, document.createElement("strong"));
    el.types.append(total);
  }

  function renderCounts() {
    const max = Math.max(1, ...state.counts.values());
    for (const [type, count] of state.counts) {
      const row = typeRow(type);
      row.querySelector(".type-count").textContent = number.format(count);
      row.querySelector(".bar-fill").style.transform = `scaleX(${count / max})`;
    }
    for (const [type, row] of state.typeRows) {
      if (!state.counts.has(type)) row.querySelector(".type-count").textContent = "0";
    }
    el.types.querySelector(".types-total strong").textContent = number.format(state.total);
    // The counts cover the stored alerts loaded at start (up to INITIAL_LIMIT) and every
    // live one since: say from when, so they are not read as all-time totals.
    const parts = state.userId ? [`user ${state.userId}`] : [];
    if (Number.isFinite(state.oldest)) {
      const since = new Date(state.oldest);
      const sameDay = since.toDateString() === new Date().toDateString();
      parts.push(`since ${(sameDay ? clock : dayClock).format(since)}`);
    }
    el.typesScope.textContent = parts.join(" · ");
  }

  // ---------------------------------------------------------------- API key

  class Unauthorized extends Error {}

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || state.key;
    } catch (error) {
      return state.key; // storage disabled: kept in memory, asked again on the next load
    }
  }

  // fetch() on this origin with the key of this tab; a 401 locks the page and asks for it.
  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    const key = storedKey();
    if (key) headers["X-API-Key"] = key;
    const response = await fetch(path, { cache: "no-store", ...options, headers });
    if (response.status === 401) {
      // a 401 answering a request sent before the key was given (or changed) asks nothing:
      // it would lock the page again right after the analyst unlocked it
      if ((storedKey() || "") === (key || "")) askForKey(Boolean(key));
      throw new Unauthorized(`HTTP 401 for ${path}`);
    }
    return response;
  }

  function askForKey(refused) {
    if (state.locked) return;
    state.locked = true;
    state.generation += 1; // late answers of the refused requests are dropped
    closeStream();
    clearTimeout(state.statsTimer);
    state.key = "";
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch (error) {
      // nothing stored
    }
    if (refused) {
      el.keyForm.dataset.refused = "";
      el.keyNote.textContent = "That API key was not accepted. Enter a valid one.";
    }
    el.keyForm.hidden = false;
    setStatus("locked", "API key needed");
    el.keyInput.focus();
  }

  el.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = el.keyInput.value.trim();
    if (!key) return;
    state.key = key;
    try {
      sessionStorage.setItem(KEY_STORAGE, key);
    } catch (error) {
      console.warn("sessionStorage unavailable: the key is not kept", error);
    }
    el.keyInput.value = "";
    el.keyForm.hidden = true;
    delete el.keyForm.dataset.refused;
    state.locked = false;
    subscribe();
    pollStats();
    for (const listener of unlockListeners) listener();
  });

  // For cases.js (the analyst's queue, loaded after this file): the same keyed fetch, and
  // a call when a key is given after a 401.
  const unlockListeners = [];
  window.FraudDashboard = Object.freeze({
    api,
    Unauthorized,
    locked: () => state.locked,
    onUnlock: (listener) => unlockListeners.push(listener),
  });

  // ---------------------------------------------------------------- stream and list

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
    const text = search.toString();
    return text ? `?${text}` : "";
  }

  function subscribe() {
    state.generation += 1;
    closeStream();
    state.seen.clear();
    state.pending = [];
    state.counts.clear();
    state.total = 0;
    state.oldest = Infinity;
    state.lastId = "";
    state.initialLoaded = false;
    state.reconnectDelay = 1000;
    el.feed.replaceChildren();
    el.empty.hidden = false;
    el.empty.textContent = "Waiting for alerts…";
    resetCounts();
    const scope = state.userId ? `· user ${state.userId}` : "· all users";
    el.feedScope.textContent = scope;
    el.clear.hidden = !state.userId;
    openStream();
    schedule();
  }

  function closeStream() {
    clearTimeout(state.reconnectTimer);
    if (state.source) state.source.abort();
    state.source = null;
  }

  function openStream() {
    if (state.locked) return;
    const generation = state.generation;
    const controller = new AbortController();
    state.source = controller;
    setStatus("connecting", state.lastId ? "Reconnecting…" : "Connecting…");
    const headers = { Accept: "text/event-stream" };
    if (state.lastId) headers["Last-Event-ID"] = state.lastId; // replay what was missed
    let opened = false;
    let retryAfter = 0;
    api(`/api/v1/alerts/stream${query({ userId: state.userId })}`, {
      headers,
      signal: controller.signal,
    })
      .then(async (response) => {
        if (!response.ok || !response.body) {
          retryAfter = 1000 * (Number(response.headers.get("Retry-After")) || 0);
          throw new Error(`HTTP ${response.status}`);
        }
        if (generation !== state.generation) return;
        opened = true;
        state.reconnectDelay = 1000;
        setStatus("live", state.userId ? "Live · filtered" : "Live");
        if (!state.initialLoaded) loadInitial(generation);
        await readEvents(response.body.getReader(), generation);
        throw new Error("the stream ended");
      })
      .catch((error) => {
        if (generation !== state.generation || controller.signal.aborted) return;
        if (error instanceof Unauthorized) return; // the key form is up
        if (!state.initialLoaded) loadInitial(generation);
        // A stream that was live comes back after the server's retry interval; a refused
        // or failed connection backs off (and waits at least the server's Retry-After).
        let delay = state.retryMs;
        if (opened) {
          setStatus("reconnecting", "Reconnecting…");
        } else {
          delay = Math.max(state.reconnectDelay, retryAfter);
          state.reconnectDelay = Math.min(state.reconnectDelay * 2, BACKOFF_MAX_MS);
          setStatus("offline", `Offline · retry in ${Math.round(delay / 1000)} s`);
        }
        state.reconnectTimer = setTimeout(() => {
          if (generation === state.generation) openStream();
        }, delay);
      });
  }

  // Server-sent events as an EventSource parses them: "field: value" lines, a blank line
  // ends an event, lines starting with ":" are comments (the server's heartbeats).
  async function readEvents(reader, generation) {
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { type: "", id: null, data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (generation !== state.generation) {
        reader.cancel();
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {
          dispatchEvent(event);
          event = { type: "", id: null, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") event.data.push(text);
        else if (field === "event") event.type = text;
        else if (field === "id") event.id = text;
        else if (field === "retry" && /^\d+$/.test(text)) state.retryMs = Number(text);
      }
    }
  }

  function dispatchEvent(event) {
    if (event.id !== null) state.lastId = event.id;
    if (event.type !== "alert" || !event.data.length) return;
    let alert;
    try {
      alert = JSON.parse(event.data.join("\n"));
    } catch (error) {
      console.warn("unreadable alert event", error);
      return;
    }
    receive(alert);
  }

  async function loadInitial(generation) {
    state.initialLoaded = true;
    try {
      const response = await api(
        `/api/v1/alerts${query({ userId: state.userId, limit: String(INITIAL_LIMIT) })}`,
      );
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (generation !== state.generation) return;
      if (!state.lastId && body.alerts.length) state.lastId = body.alerts[0].alertId;
      appendOlder(body.alerts);
      el.empty.textContent = "No alerts yet. New ones appear here as they are raised.";
      el.empty.hidden = el.feed.childElementCount > 0;
    } catch (error) {
      if (generation !== state.generation || error instanceof Unauthorized) return;
      console.warn("could not load the stored alerts", error);
      state.initialLoaded = false; // try again on the next open or error
      el.empty.textContent = "Could not load the stored alerts; retrying…";
    }
  }

  // ---------------------------------------------------------------- stats and chart

  async function pollStats() {
    clearTimeout(state.statsTimer);
    if (state.locked) return; // started again once a key is given
    try {
      const response = await api(`/api/v1/stats?seconds=${STATS_SECONDS + 1}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      // The last second is still filling up: leave it out so the lines do not dip at the end.
      state.stats = {
        seconds: body.seconds.slice(0, -1),
        transactions: body.transactions.slice(0, -1),
        alerts: body.alerts.slice(0, -1),
      };
      el.chartNote.hidden = true;
      renderStats();
    } catch (error) {
      if (error instanceof Unauthorized) return;
      el.chartNote.textContent = "stats unavailable, retrying";
      el.chartNote.hidden = false;
    }
    clearTimeout(state.statsTimer);
    if (!state.locked) state.statsTimer = setTimeout(pollStats, STATS_POLL_MS);
  }

  const sum = (values) => values.reduce((a, b) => a + b, 0);

  function renderStats() {
    const { transactions, alerts } = state.stats;
    const recentTx = transactions.slice(-RATE_SECONDS);
    const recentAlerts = alerts.slice(-RATE_SECONDS);
    el.tps.textContent = rate.format(sum(recentTx) / Math.max(1, recentTx.length));
    el.aps.textContent = rate.format(sum(recentAlerts) / Math.max(1, recentAlerts.length));
    const txTotal = sum(transactions);
    const alertTotal = sum(alerts);
    el.txTotal.textContent = number.format(txTotal);
    el.alertTotal.textContent = number.format(alertTotal);
    // One transaction can fire several rules, so this is a rate, not a share.
    el.alertRate.textContent = txTotal
      ? `${rate.format((100 * alertTotal) / txTotal)} per 100 transactions`
      : "per 100 transactions";
    drawChart();
  }

  // Gridlines at a round step (1, 2, 2.5 or 5 times a power of ten, at least 1), about
  // five of them, the top one just above the highest point.
  function yScale(peak) {
    const target = (peak * 1.05) / 5;
    const magnitude = 10 ** Math.floor(Math.log10(Math.max(target, 1e-9)));
    const step = Math.max(1, [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= target));
    const ticks = Math.max(2, Math.ceil((peak * 1.05) / step));
    return { step, max: step * ticks, ticks };
  }

  // Theme values read once: getComputedStyle on every draw would force a style pass.
  const theme = new Map();
  function cssColor(name) {
    if (!theme.has(name)) {
      theme.set(name, getComputedStyle(document.documentElement).getPropertyValue(name).trim());
    }
    return theme.get(name);
  }

  function drawChart() {
    const canvas = el.chart;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const data = state.stats || { seconds: [], transactions: [], alerts: [] };
    const n = Math.max(2, data.seconds.length || STATS_SECONDS);
    const left = 44;
    const right = width - 8;
    const top = 10;
    const bottom = height - 24;
    const scale = yScale(Math.max(1, ...data.transactions, ...data.alerts));
    const yMax = scale.max;
    const x = (i) => left + ((right - left) * i) / (n - 1);
    const y = (v) => bottom - ((bottom - top) * v) / yMax;

    ctx.font = `11px ${cssColor("--font")}`;
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let i = 0; i <= scale.ticks; i += 1) {
      const value = scale.step * i;
      const gy = Math.round(y(value)) + 0.5;
      ctx.strokeStyle = cssColor("--grid");
      ctx.beginPath();
      ctx.moveTo(left, gy);
      ctx.lineTo(right, gy);
      ctx.stroke();
      ctx.fillStyle = cssColor("--faint");
      ctx.fillText(rate.format(value), left - 8, gy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    let freeFrom = Infinity; // labels are placed right to left; one that would overlap is skipped
    for (let minutes = 0; minutes <= Math.round(n / 60); minutes += 1) {
      const i = Math.max(0, n - 1 - minutes * 60);
      const label = minutes ? `−${minutes} min` : "now";
      const half = ctx.measureText(label).width / 2;
      const at = Math.min(Math.max(x(i), left + half), right - half);
      if (at + half > freeFrom - 6) continue;
      ctx.fillText(label, at, bottom + 8);
      freeFrom = at - half;
    }

    if (!data.seconds.length) return;
    series(ctx, data.transactions, x, y, bottom, cssColor("--tx"));
    series(ctx, data.alerts, x, y, bottom, cssColor("--alert"));
    if (state.hoverX !== null) {
      const i = Math.round(((state.hoverX - left) / (right - left)) * (n - 1));
      if (i >= 0 && i < data.seconds.length) readout(ctx, data, i, x, y, { top, bottom, left, right });
    }
  }

  // The values of one second under the pointer: a guide line, two dots and a label.
  function readout(ctx, data, i, x, y, box) {
    const gx = Math.round(x(i)) + 0.5;
    ctx.strokeStyle = cssColor("--muted");
    ctx.setLineDash([3, 3]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(gx, box.top);
    ctx.lineTo(gx, box.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    for (const [values, color] of [[data.transactions, "--tx"], [data.alerts, "--alert"]]) {
      ctx.beginPath();
      ctx.arc(gx, y(values[i]), 3.5, 0, 2 * Math.PI);
      ctx.fillStyle = cssColor(color);
      ctx.fill();
    }
    const lines = [
      clock.format(new Date(data.seconds[i] * 1000)),
      `${number.format(data.transactions[i])} transactions/s`,
      `${number.format(data.alerts[i])} alerts/s`,
    ];
    ctx.font = `12px ${cssColor("--font")}`;
    const w = Math.max(...lines.map((line) => ctx.measureText(line).width)) + 20;
    const h = lines.length * 17 + 10;
    const bx = gx + 10 + w > box.right ? gx - 10 - w : gx + 10;
    ctx.fillStyle = "rgba(8, 12, 26, 0.92)";
    ctx.strokeStyle = cssColor("--card-edge");
    ctx.beginPath();
    ctx.roundRect(bx, box.top, w, h, 8);
    ctx.fill();
    ctx.stroke();
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    lines.forEach((line, k) => {
      ctx.fillStyle = k === 0 ? cssColor("--muted") : cssColor(k === 1 ? "--tx" : "--alert");
      ctx.fillText(line, bx + 10, box.top + 7 + k * 17);
    });
  }

  function series(ctx, values, x, y, bottom, color) {
    const gradient = ctx.createLinearGradient(0, y(Math.max(...values, 0)), 0, bottom);
    gradient.addColorStop(0, `${color}55`);
    gradient.addColorStop(1, `${color}00`);
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.lineTo(x(values.length - 1), bottom);
    ctx.lineTo(x(0), bottom);
    ctx.closePath();
    ctx.fillStyle = gradient;
    ctx.fill();

    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    ctx.stroke();

    const last = values.length - 1;
    ctx.beginPath();
    ctx.arc(x(last), y(values[last]), 3, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
  }

  // ---------------------------------------------------------------- user filter

  function applyFilter(userId) {
    state.userId = userId;
    el.user.value = userId;
    el.user.removeAttribute("aria-invalid");
    const url = new URL(window.location.href);
    if (userId) url.searchParams.set("userId", userId);
    else url.searchParams.delete("userId");
    history.replaceState(null, "", url);
    subscribe();
  }

  el.filter.addEventListener("submit", (event) => {
    event.preventDefault();
    const userId = el.user.value.trim();
    if (userId && !USER_ID.test(userId)) {
      el.user.setAttribute("aria-invalid", "true");
      el.user.title = "1-64 characters of A-Z a-z 0-9 _ . : @ -";
      return;
    }
    applyFilter(userId);
  });
  el.clear.addEventListener("click", () => applyFilter(""));
  el.feed.addEventListener("click", (event) => {
    const link = event.target.closest(".user-link");
    if (link && link.dataset.userId) applyFilter(link.dataset.userId);
  });
  el.pause.addEventListener("click", () => {
    state.paused = !state.paused;
    schedule();
  });

  new ResizeObserver(() => drawChart()).observe(el.chart);
  el.chart.addEventListener("pointermove", (event) => {
    state.hoverX = event.offsetX;
    drawChart();
  });
  el.chart.addEventListener("pointerleave", () => {
    state.hoverX = null;
    drawChart();
  });

  const initialUser = new URLSearchParams(window.location.search).get("userId") || "";
  state.userId = USER_ID.test(initialUser) ? initialUser : "";
  el.user.value = state.userId;
  subscribe();
  pollStats();
})();
