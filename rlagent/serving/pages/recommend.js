// The recommendation page: the agent shows slates of catalogue items; the person picks one.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    info: $("info"),
    round: $("round"),
    slate: $("slate"),
    none: $("none"),
    newSession: $("new-session"),
    clickStatus: $("click-status"),
    error: $("error"),
    historyEmpty: $("history-empty"),
    history: $("history"),
    probabilities: $("probabilities"),
    candidates: $("candidates"),
  };
  const { api, el } = rlagent;
  const HISTORY_KEPT = 50;
  let info = null;
  let nCandidates = null;
  let sessionId = null;
  let candidates = [];
  let history = [];
  let round = 0;
  let busy = false;

  // The agent's number for candidate `index`: a score (scores[index]) or a probability keyed
  // by the index, the action name of the index, or the item's text; null when it has none.
  function numberFor(rec, index) {
    if (Array.isArray(rec.scores) && typeof rec.scores[index] === "number") {
      return { kind: "score", value: rec.scores[index] };
    }
    const probs = rec.probabilities;
    if (probs && typeof probs === "object" && !Array.isArray(probs)) {
      const names = (info && info.action_names) || [];
      for (const key of [String(index), names[index], candidates[index]]) {
        if (key !== undefined && typeof probs[key] === "number") {
          return { kind: "probability", value: probs[key] };
        }
      }
    }
    if (Array.isArray(probs) && typeof probs[index] === "number") {
      return { kind: "probability", value: probs[index] };
    }
    return null;
  }

  // A probability entry's label: the item it names, when the key names a candidate.
  function labelFor(key) {
    const names = (info && info.action_names) || [];
    let index = /^\d+$/.test(key) ? Number(key) : names.indexOf(key);
    if (index < 0 || index >= candidates.length) index = -1;
    return index >= 0 ? `#${index} ${candidates[index]}` : key;
  }

  function setBusy(value) {
    busy = value;
    for (const button of ui.slate.querySelectorAll("button")) button.disabled = value;
    ui.none.disabled = value || !ui.slate.children.length;
  }

  function renderSlate(rec) {
    ui.slate.replaceChildren();
    rec.slate.forEach((index, position) => {
      const text = rec.items ? rec.items[position] : candidates[index];
      const number = numberFor(rec, index);
      const card = el(
        "button",
        { type: "button", className: "card", "data-candidate": index },
        el("span", { className: "position", text: `${position + 1}` }),
        el("span", { className: "text", text }),
      );
      if (number) {
        const shown = number.kind === "score" ? number.value.toFixed(2) : rlagent.percent(number.value);
        card.append(el("span", { className: "score", text: `${number.kind} ${shown}` }));
      }
      card.addEventListener("click", () => choose(index, text));
      ui.slate.append(el("li", {}, card));
    });
    ui.candidates.replaceChildren(...candidates.map((text) => el("li", { text })));
    rlagent.renderProbabilities(ui.probabilities, rec.probabilities, {
      chosen: rec.slate.flatMap((i) => [String(i), ((info && info.action_names) || [])[i]]),
      label: labelFor,
    });
    ui.round.textContent = `Round ${round}: the agent shows ${rec.slate.length} of ${candidates.length} candidates.`;
    ui.none.disabled = false;
  }

  function renderHistory() {
    ui.historyEmpty.hidden = history.length > 0;
    ui.history.replaceChildren(...history.map((text) => el("li", { text })));
  }

  async function nextRound() {
    setBusy(true);
    try {
      if (!sessionId) {
        sessionId = (await api("POST", "v1/sessions")).session_id;
      }
      const query = nCandidates ? `?n=${nCandidates}` : "";
      const sample = await api("GET", `v1/catalog/sample${query}`);
      candidates = sample.texts;
      const body = { candidates, history: history.slice(-HISTORY_KEPT) };
      if (Array.isArray(sample.popularity)) body.popularity = sample.popularity;
      const rec = await api("POST", `v1/sessions/${encodeURIComponent(sessionId)}/recommend`, body);
      round += 1;
      renderSlate(rec);
    } catch (err) {
      rlagent.showError(ui.error, err);
      ui.round.textContent = "No slate: see the error below.";
    } finally {
      setBusy(false);
    }
  }

  async function choose(index, text) {
    if (busy) return;
    rlagent.clearError(ui.error);
    setBusy(true);
    try {
      await api("POST", `v1/sessions/${encodeURIComponent(sessionId)}/click`, { candidate: index });
      if (index === null) {
        ui.clickStatus.textContent = `Recorded: none of round ${round}'s items.`;
      } else {
        history.push(text);
        renderHistory();
        ui.clickStatus.textContent = `Recorded: you chose “${text}”.`;
      }
      ui.clickStatus.className = "recorded";
    } catch (err) {
      rlagent.showError(ui.error, err);
      setBusy(false);
      return;
    }
    await nextRound();
  }

  ui.none.addEventListener("click", () => choose(null, null));

  ui.newSession.addEventListener("click", async () => {
    if (busy) return;
    const old = sessionId;
    sessionId = null;
    history = [];
    round = 0;
    renderHistory();
    ui.clickStatus.textContent = "";
    rlagent.clearError(ui.error);
    if (old) {
      try {
        await api("DELETE", `v1/sessions/${encodeURIComponent(old)}`);
      } catch (_) {
        // an expired session is already gone: nothing to end
      }
    }
    await nextRound();
  });

  (async () => {
    try {
      info = await rlagent.loadInfo(ui.round);
      rlagent.renderInfo(ui.info, info);
      if (info.kind !== "slate") {
        rlagent.showError(
          ui.error,
          `This server runs a ${info.kind} agent, not a recommendation (slate) agent: open chat.html instead.`,
        );
        ui.round.textContent = "";
        return;
      }
      const settings = info.settings || {};
      nCandidates = info.n_candidates || (settings.env_kwargs || {}).n_candidates || settings.n_candidates || null;
      document.body.dataset.ready = "true";
      await nextRound();
    } catch (err) {
      ui.info.textContent = "";
      rlagent.showError(ui.error, err);
    }
  })();
})();
