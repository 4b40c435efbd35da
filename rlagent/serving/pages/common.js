// What the rlagent pages share: calling the JSON API, showing its errors, the server banner
// and the sorted probability bars. Plain JavaScript, no build step, nothing from the network.
"use strict";

const rlagent = (() => {
  // The app's root: the pages live under <root>/pages/, the API under <root>/v1/. Relative,
  // so the pages also work behind a path prefix (a reverse proxy, a Ray Serve route).
  const root = new URL("../", document.baseURI);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  // Calls the API; resolves to the JSON body, or throws ApiError with the server's message.
  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, root), init);
    } catch (err) {
      throw new ApiError(0, `The server cannot be reached (${err.message}). Is it running?`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message =
        data && typeof data.error === "string"
          ? data.error
          : `HTTP ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  // Creates an element; text is set as text (never parsed as HTML).
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function showError(box, err) {
    const message = err instanceof Error ? err.message : String(err);
    const status = err instanceof ApiError && err.status ? ` (HTTP ${err.status})` : "";
    box.replaceChildren(el("strong", { text: "Error" + status + ": " }), message);
    box.hidden = false;
  }

  function clearError(box) {
    box.replaceChildren();
    box.hidden = true;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // GET /v1/info, waiting while the model loads (503 "still loading").
  async function loadInfo(statusBox, attempts = 60) {
    for (let i = 0; ; i++) {
      try {
        return await api("GET", "v1/info");
      } catch (err) {
        const loading = err instanceof ApiError && err.status === 503 && /loading/.test(err.message);
        if (!loading || i + 1 >= attempts) throw err;
        if (statusBox) statusBox.textContent = "The model is loading; this page will start when it is ready…";
        await sleep(1000);
      }
    }
  }

  // The banner: which model answers, and whether its decisions are logged.
  function renderInfo(box, info) {
    const hash = String(info.model_hash || "unknown");
    const code = el("code", { title: hash, text: hash.length > 12 ? hash.slice(0, 12) + "…" : hash });
    const logging = info.logging
      ? "Every decision is logged, with its action probabilities and your responses, to evaluate and improve the agent."
      : "This server does not log decisions.";
    box.replaceChildren(
      el("span", {}, "Model ", code),
      el("span", { className: info.logging ? "logging on" : "logging off", id: "logging", text: logging }),
    );
  }

  function percent(p) {
    const value = 100 * p;
    return value >= 10 || value === 0 ? `${value.toFixed(0)}%` : `${value.toFixed(1)}%`;
  }

  // Fills <ol> list with the top entries of a {name: probability} object, highest first.
  // label(name) may rename an entry; chosen names are highlighted.
  function renderProbabilities(list, probabilities, { top = 8, chosen = [], label = (n) => n } = {}) {
    const entries = Object.entries(probabilities || {})
      .filter(([, p]) => typeof p === "number" && Number.isFinite(p))
      .sort((a, b) => b[1] - a[1]);
    list.replaceChildren();
    for (const [name, p] of entries.slice(0, top)) {
      const bar = el("span", { className: "bar", "aria-hidden": "true" });
      bar.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      list.append(
        el(
          "li",
          { className: chosen.includes(name) ? "chosen" : null, "data-name": name },
          el("span", { className: "name", text: label(name), title: label(name) }),
          el("span", { className: "track" }, bar),
          el("span", { className: "pct", text: percent(p) }),
        ),
      );
    }
    if (entries.length > top) {
      list.append(el("li", { className: "more", text: `and ${entries.length - top} more` }));
    }
  }

  return { api, ApiError, el, showError, clearError, loadInfo, renderInfo, renderProbabilities, percent };
})();
