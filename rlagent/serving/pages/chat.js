// The chat page: a person plays the customer; the agent answers through the JSON API.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    info: $("info"),
    transcript: $("transcript"),
    done: $("done"),
    error: $("error"),
    composer: $("composer"),
    message: $("message"),
    send: $("send"),
    feedback: $("feedback"),
    up: $("thumbs-up"),
    down: $("thumbs-down"),
    feedbackStatus: $("feedback-status"),
    newConversation: $("new-conversation"),
    decisionEmpty: $("decision-empty"),
    decision: $("decision"),
    action: $("action"),
    value: $("value"),
    probabilities: $("probabilities"),
  };
  const { api, el } = rlagent;
  let sessionId = null;
  let busy = false;

  function setBusy(value) {
    busy = value;
    ui.send.disabled = value;
    ui.send.textContent = value ? "Sending…" : "Send";
  }

  function addMessage(who, text, action, probability) {
    const item = el(
      "li",
      { className: `message ${who}` },
      el("span", { className: "who", text: who === "customer" ? "You" : "Agent" }),
      el("span", { className: "text", text }),
    );
    if (action) {
      const tag = probability === undefined ? action : `${action} · ${rlagent.percent(probability)}`;
      item.append(el("span", { className: "action-tag", text: tag }));
    }
    ui.transcript.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function showDecision(turn) {
    ui.decisionEmpty.hidden = true;
    ui.decision.hidden = false;
    ui.action.textContent = turn.action;
    ui.value.textContent = typeof turn.value === "number" ? `(value ${turn.value.toFixed(2)})` : "";
    rlagent.renderProbabilities(ui.probabilities, turn.probabilities, { chosen: [turn.action] });
  }

  function showDone(turn) {
    ui.done.replaceChildren(
      el("strong", { text: "Conversation done. " }),
      `The agent chose “${turn.action}”. Rate it below; if it did not solve your request, write again, or start a new conversation.`,
    );
    ui.done.hidden = false;
    ui.feedback.classList.add("prominent");
  }

  async function send(text) {
    if (!sessionId) {
      const created = await api("POST", "v1/sessions");
      sessionId = created.session_id;
    }
    return api("POST", `v1/sessions/${encodeURIComponent(sessionId)}/turns`, { text });
  }

  ui.composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const text = ui.message.value;
    if (!text.trim()) {
      rlagent.showError(ui.error, "Write a message first.");
      ui.message.focus();
      return;
    }
    rlagent.clearError(ui.error);
    setBusy(true);
    try {
      const turn = await send(text);
      ui.message.value = "";
      ui.done.hidden = true;
      addMessage("customer", text);
      const p = turn.probabilities ? turn.probabilities[turn.action] : undefined;
      addMessage("agent", turn.reply, turn.action, typeof p === "number" ? p : undefined);
      showDecision(turn);
      ui.feedback.hidden = false;
      if (turn.done) showDone(turn);
    } catch (err) {
      rlagent.showError(ui.error, err); // the text stays in the box, to fix and resend
      if (err instanceof rlagent.ApiError && err.status === 404 && sessionId) {
        sessionId = null; // ended or expired: the next message opens a new session
        ui.error.append(" Press Send again to start a new conversation.");
      }
    } finally {
      setBusy(false);
      ui.message.focus();
    }
  });

  async function sendFeedback(helpful) {
    if (!sessionId) return;
    rlagent.clearError(ui.error);
    ui.up.disabled = ui.down.disabled = true;
    ui.feedbackStatus.textContent = "Sending…";
    try {
      const body = helpful ? { resolved: true, rating: 5 } : { resolved: false, rating: 1 };
      const answer = await api("POST", `v1/sessions/${encodeURIComponent(sessionId)}/feedback`, body);
      ui.feedbackStatus.textContent = answer && answer.logged
        ? `Thank you: your ${helpful ? "thumbs up" : "thumbs down"} was recorded.`
        : "Thank you (this server does not log feedback).";
      ui.feedbackStatus.className = "recorded";
    } catch (err) {
      ui.feedbackStatus.textContent = "";
      ui.up.disabled = ui.down.disabled = false;
      rlagent.showError(ui.error, err);
    }
  }

  ui.up.addEventListener("click", () => sendFeedback(true));
  ui.down.addEventListener("click", () => sendFeedback(false));

  ui.newConversation.addEventListener("click", async () => {
    const old = sessionId;
    sessionId = null;
    ui.transcript.replaceChildren();
    ui.done.hidden = true;
    ui.feedback.hidden = true;
    ui.feedback.classList.remove("prominent");
    ui.feedbackStatus.textContent = "";
    ui.feedbackStatus.className = "";
    ui.up.disabled = ui.down.disabled = false;
    ui.decision.hidden = true;
    ui.decisionEmpty.hidden = false;
    rlagent.clearError(ui.error);
    ui.message.value = "";
    ui.message.focus();
    if (old) {
      try {
        await api("DELETE", `v1/sessions/${encodeURIComponent(old)}`);
      } catch (_) {
        // an expired session is already gone: nothing to end
      }
    }
  });

  (async () => {
    try {
      const info = await rlagent.loadInfo(ui.info);
      rlagent.renderInfo(ui.info, info);
      if (info.kind !== "dialogue") {
        rlagent.showError(
          ui.error,
          `This server runs a ${info.kind} agent, not a dialogue agent: open recommend.html instead.`,
        );
        ui.send.disabled = true;
      }
      document.body.dataset.ready = "true";
    } catch (err) {
      ui.info.textContent = "";
      rlagent.showError(ui.error, err);
    }
  })();
})();
