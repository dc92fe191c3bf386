// The analyst's side of the dashboard: the queue of open cases (highest risk first), a
// case page (its alerts and history, assign and close with a verdict) and the rules panel
// (per-rule precision from the verdicts). Plain JavaScript like dashboard.js, whose keyed
// fetch it uses (window.FraudDashboard): a 401 locks the page there, and the polling here
// waits until a key is given. The queue and the rules are polled; an open case page is
// refreshed with them. The analyst's name (optional) goes out as X-Analyst.
"use strict";

(() => {
  const board = window.FraudDashboard;
  const POLL_MS = 2500;
  const QUEUE_LIMIT = 200;
  const NAME_STORAGE = "fraud-alerts.analyst";
  const VERDICTS = {
    confirmed_fraud: "Confirmed fraud",
    false_positive: "False positive",
    legitimate: "Legitimate",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    queue: $("queue"),
    queueEmpty: $("queue-empty"),
    queueMeta: $("queue-meta"),
    analyst: $("analyst-name"),
    rules: $("rules"),
    rulesEmpty: $("rules-empty"),
    view: $("case-view"),
    title: $("case-title"),
    status: $("case-status"),
    facts: $("case-facts"),
    actions: $("case-actions"),
    assignForm: $("assign-form"),
    assignee: $("assignee"),
    closeForm: $("close-form"),
    verdict: $("verdict"),
    comment: $("comment"),
    message: $("case-message"),
    alerts: $("case-alerts"),
    history: $("case-history"),
    back: $("case-close-view"),
  };
  const state = { caseId: "", timer: 0, busy: false };
  const when = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false,
  });

  function text(tag, content, className) {
    const node = document.createElement(tag);
    node.textContent = content;
    if (className) node.className = className;
    return node;
  }

  function time(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso || "") : when.format(date);
  }

  function analystHeaders() {
    const name = el.analyst.value.trim();
    return name ? { "X-Analyst": name } : {};
  }

  async function getJson(path) {
    const response = await board.api(path);
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${path}`);
    return response.json();
  }

  // ------------------------------------------------------------------------ queue

  function byRisk(a, b) {
    const risk = (b.maxRiskScore ?? -1) - (a.maxRiskScore ?? -1);
    return risk || String(b.updatedAt).localeCompare(String(a.updatedAt));
  }

  function renderQueue(cases) {
    const rows = cases.slice().sort(byRisk).map((item) => {
      const row = document.createElement("tr");
      row.dataset.caseId = item.caseId;
      row.dataset.risk = String(item.maxRiskScore ?? "");
      row.tabIndex = 0;
      row.title = "Open this case";
      if (item.caseId === state.caseId) row.className = "selected";
      const risk = text("td", item.maxRiskScore ?? "–", "num risk");
      if ((item.maxRiskScore ?? 0) >= 80) risk.classList.add("risk-high");
      row.append(
        risk,
        text("td", item.userId, "mono"),
        text("td", String(item.alertCount), "num"),
        text("td", item.assignee || "unassigned", item.assignee ? "" : "muted"),
        text("td", time(item.updatedAt), "muted"),
      );
      return row;
    });
    el.queue.replaceChildren(...rows);
    el.queueEmpty.hidden = rows.length > 0;
    el.queueMeta.textContent = `· ${cases.length} open, highest risk first`;
  }

  function renderRules(rules) {
    const items = rules.map((rule) => {
      const item = document.createElement("li");
      item.className = "rule";
      item.dataset.ruleId = rule.ruleId;
      const precision = rule.precision === null ? "–" : `${Math.round(rule.precision * 100)}%`;
      const line = document.createElement("div");
      line.className = "type-line";
      line.append(text("span", rule.ruleId, "type-name"), text("span", precision, "rule-precision"));
      const detail = text(
        "p",
        `${rule.alerts} alerts · ${rule.labelled} labelled · ${rule.confirmedFraud} fraud · ` +
          `${rule.falsePositive} false positive`,
        "rule-detail muted",
      );
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${rule.precision === null ? 0 : Math.round(rule.precision * 100)}%`;
      bar.append(fill);
      item.append(line, detail, bar);
      return item;
    });
    el.rules.replaceChildren(...items);
    el.rulesEmpty.hidden = items.length > 0;
  }

  // ------------------------------------------------------------------------ case page

  function fact(name, value) {
    return [text("dt", name), text("dd", value)];
  }

  function renderCase(item) {
    el.view.hidden = false;
    el.view.dataset.caseId = item.caseId;
    el.view.dataset.status = item.status;
    el.title.textContent = `Case · user ${item.userId}`;
    el.status.textContent = item.status === "closed"
      ? `closed · ${VERDICTS[item.verdict] || item.verdict}` : "open";
    el.status.dataset.status = item.status;
    el.facts.replaceChildren(
      ...fact("Case", item.caseId),
      ...fact("Opened", time(item.openedAt)),
      ...fact("Alerts", String(item.alertCount)),
      ...fact("Max risk", item.maxRiskScore ?? "–"),
      ...fact("Assignee", item.assignee || "unassigned"),
      ...(item.status === "closed"
        ? [...fact("Closed by", item.closedBy || ""), ...fact("Comment", item.comment || "–")]
        : []),
    );
    el.actions.hidden = item.status === "closed";
    el.alerts.replaceChildren(...item.alerts.map((alert) => {
      const entry = document.createElement("li");
      entry.dataset.alertId = alert.alertId;
      const txn = alert.transaction || {};
      entry.append(
        text("strong", alert.ruleId || alert.alertType),
        text("span", ` · risk ${alert.riskScore ?? "–"} · ${txn.amount} ${txn.currency} in ${txn.location}`),
        text("span", ` ${time(alert.timestamp)}`, "muted"),
      );
      if (alert.label) entry.append(text("span", alert.label, `pill label-${alert.label}`));
      return entry;
    }));
    el.history.replaceChildren(...item.history.map((entry) => {
      const line = document.createElement("li");
      line.dataset.action = entry.action;
      const details = Object.entries(entry.details || {})
        .filter(([, value]) => value !== null && value !== "")
        .map(([key, value]) => `${key}: ${value}`).join(", ");
      line.append(
        text("span", time(entry.at), "muted mono"),
        text("strong", ` ${entry.action}`),
        text("span", ` by ${entry.actor}`),
        text("span", details ? ` (${details})` : "", "muted"),
      );
      return line;
    }));
  }

  function showMessage(message) {
    el.message.textContent = message;
    el.message.hidden = !message;
  }

  async function openCase(caseId) {
    state.caseId = caseId;
    showMessage("");
    for (const row of el.queue.children) row.classList.toggle("selected", row.dataset.caseId === caseId);
    try {
      renderCase(await getJson(`/api/v1/cases/${encodeURIComponent(caseId)}`));
    } catch (error) {
      if (!(error instanceof board.Unauthorized)) showMessage(`Could not load the case: ${error.message}`);
    }
  }

  async function act(action, body) {
    if (!state.caseId || state.busy) return;
    state.busy = true;
    showMessage("");
    try {
      const response = await board.api(`/api/v1/cases/${encodeURIComponent(state.caseId)}/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...analystHeaders() },
        body: JSON.stringify(body),
      });
      const payload = await response.json();
      if (response.ok) {
        renderCase(payload);
      } else {
        const details = (payload.error?.details || []).map((d) => `${d.field} ${d.message}`).join("; ");
        showMessage(`${payload.error?.message || response.status}${details ? `: ${details}` : ""}`);
        if (response.status === 409) await openCase(state.caseId);
      }
      await refresh();
    } catch (error) {
      if (!(error instanceof board.Unauthorized)) showMessage(`Failed: ${error.message}`);
    } finally {
      state.busy = false;
    }
  }

  // ------------------------------------------------------------------------ polling

  async function refresh() {
    if (board.locked()) return;
    try {
      const [queue, quality] = await Promise.all([
        getJson(`/api/v1/cases?status=open&limit=${QUEUE_LIMIT}`),
        getJson("/api/v1/rules/quality"),
      ]);
      renderQueue(queue.cases);
      renderRules(quality.rules);
    } catch (error) {
      if (!(error instanceof board.Unauthorized)) console.warn("cases: refresh failed", error);
    }
  }

  function poll() {
    clearTimeout(state.timer);
    refresh().finally(() => {
      if (state.caseId && !state.busy && !board.locked() && el.view.dataset.status === "open") {
        openCase(state.caseId);
      }
      state.timer = setTimeout(poll, POLL_MS);
    });
  }

  el.queue.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-case-id]");
    if (row) openCase(row.dataset.caseId);
  });
  el.queue.addEventListener("keydown", (event) => {
    const row = event.target.closest("tr[data-case-id]");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openCase(row.dataset.caseId);
    }
  });
  el.assignForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const assignee = el.assignee.value.trim();
    if (!assignee) {
      showMessage("Enter who takes the case.");
      return;
    }
    act("assign", { assignee });
  });
  el.closeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act("close", { verdict: el.verdict.value, comment: el.comment.value.trim() });
  });
  el.back.addEventListener("click", () => {
    state.caseId = "";
    el.view.hidden = true;
    refresh();
  });
  try {
    el.analyst.value = sessionStorage.getItem(NAME_STORAGE) || "";
  } catch (error) {
    // storage disabled: the name is typed again
  }
  el.analyst.addEventListener("change", () => {
    try {
      sessionStorage.setItem(NAME_STORAGE, el.analyst.value.trim());
    } catch (error) {
      // storage disabled
    }
  });

  board.onUnlock(poll);
  poll();
})();
