// The index: sends the person to the page for this server's agent kind (GET /v1/info).
"use strict";

(async () => {
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const pages = { dialogue: "chat.html", slate: "recommend.html" };
  try {
    const info = await rlagent.loadInfo(status);
    rlagent.renderInfo(document.getElementById("info"), info);
    const page = pages[info.kind];
    if (page) {
      status.textContent = `This server runs a ${info.kind} agent; opening ${page}…`;
      window.location.replace(page);
    } else {
      status.textContent = `This server runs a ${info.kind} agent, which has no page here.`;
    }
  } catch (err) {
    status.textContent = "Pick a page below once the server is ready.";
    rlagent.showError(error, err);
  }
})();
