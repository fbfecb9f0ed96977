// Home: create a lobby, or join one by its code (filled in from a /j/CODE link).

import { button, field, h } from "../ui.js";

function safeDecode(text) {
  try {
    return decodeURIComponent(text || "");
  } catch {
    return "";
  }
}

export function mount(app) {
  const code = h("input", {
    name: "code",
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
    inputmode: "text",
    maxlength: 12,
    placeholder: "K7M-2QXR",
    value: safeDecode(app.joinCode),
  });
  const name = h("input", { name: "name", maxlength: 80, placeholder: "Lecture hall B", autocomplete: "off" });
  const message = h("p", { class: "notice", role: "alert" }, app.notice || "");
  const busy = async (target, work) => {
    target.disabled = true;
    message.textContent = "";
    try {
      await work();
    } catch (error) {
      message.textContent = error.message;
    } finally {
      target.disabled = false;
    }
  };
  const join = (event) => {
    event.preventDefault();
    busy(event.submitter || event.currentTarget.querySelector("button"), () =>
      app.enter("lobby.join", { code: code.value.trim() }));
  };
  return h("section", { class: "screen home" },
    h("h1", {}, "Measure a room with phones"),
    h("p", { class: "lead" },
      "One phone plays a sweep, the others listen. You get reverberation time, clarity and more per octave band."),
    message,
    h("form", { class: "card", onsubmit: join, "aria-labelledby": "join-title" },
      h("h2", { id: "join-title" }, "Join a lobby"),
      field("Lobby code", code, "The host's screen shows it, or scan the host's QR code."),
      h("button", { type: "submit", class: "primary" }, "Join")),
    h("div", { class: "card" },
      h("h2", {}, "Start a lobby"),
      field("Name (optional)", name),
      button("Create lobby", (event) => busy(event.currentTarget, () =>
        app.enter("lobby.create", name.value.trim() ? { name: name.value.trim() } : {})), { class: "primary" })),
    h("p", { class: "small" }, "Phones need to be in the same room. Keep this page open while you measure."));
}

export function update(app, node) {
  const notice = node.querySelector(".notice");
  if (app.notice) notice.textContent = app.notice;
}
