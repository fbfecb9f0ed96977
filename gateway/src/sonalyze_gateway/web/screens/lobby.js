// The lobby: who is here with which role, the join code and its QR code, this phone's
// readiness (with the tap that allows the microphone or the sound), and the host's controls.

import { enableAudio } from "../audio.js";
import { isHost } from "../lobby-state.js";
import { button, field, h, phoneName, replace } from "../ui.js";

// The measurement service's limit on the sweeps together, in s (MAX_SWEEPS_S).
const MAX_SWEEPS_S = 60;

const ROLES = [
  ["", "No role"],
  ["speaker", "Speaker"],
  ["microphone", "Microphone"],
  ["observer", "Observer"],
];
const WORKFLOW = {
  idle: "Waiting for a speaker and a microphone, all ready",
  ready: "Ready to measure",
  measuring: "Measuring",
  uploading: "Uploading recordings",
  analyzing: "Analysing",
  aborted: "Measurement stopped",
};

export function mount(app) {
  const node = h("section", { class: "screen lobby" });
  update(app, node);
  return node;
}

async function act(app, work) {
  try {
    await work();
  } catch (error) {
    app.say(error.message);
  }
}

function joinCard(app) {
  const { lobby } = app.state;
  const link = `${location.origin}/j/${lobby.code}`;
  const pretty = `${lobby.code.slice(0, 3)}-${lobby.code.slice(3)}`;
  const share = navigator.share
    ? button("Share link", () => navigator.share({ title: "Join my Sonalyze lobby", url: link }).catch(() => {}))
    : button("Copy link", (event) => {
      navigator.clipboard?.writeText(link);
      event.currentTarget.textContent = "Copied";
    });
  return h("div", { class: "card join" },
    h("div", {},
      h("p", { class: "label" }, lobby.name || "Lobby code"),
      h("p", { class: "code", "aria-label": `Lobby code ${lobby.code.split("").join(" ")}` }, pretty),
      h("p", { class: "small" }, h("a", { href: link }, link)),
      share),
    h("img", { class: "qr", src: `/app/qr.svg?text=${encodeURIComponent(link)}`, width: 132, height: 132, alt: `QR code of the join link ${link}` }));
}

function readiness(app) {
  const me = app.state.members.get(app.state.me);
  if (!me) return null;
  const role = me.role;
  const idle = ["idle", "ready", "aborted"].includes(app.state.lobby.workflow);
  if (!role || role === "observer") {
    const text = role
      ? "You are observing: you see the results as they come."
      : isHost(app.state)
        ? "Give every phone a role below: one speaker, and microphones where you want to measure."
        : "Wait for the host to give you a role.";
    return h("div", { class: "card" }, h("p", {}, text));
  }
  const ready = me.status === "ready";
  const micOff = role === "microphone" && !app.mic.open;
  const setReady = (status) => act(app, async () => {
    if (status === "ready") {
      if (role === "microphone") await app.mic.start(); // opened now, so no lead-in is missed
      else await enableAudio();
    }
    await app.connection.command("role.update", { status });
  });
  let control;
  if (ready && !micOff) {
    control = button("Not ready", () => setReady("not_ready"), { disabled: !idle });
  } else {
    const label = role === "microphone" ? "Allow microphone and get ready" : "Enable sound and get ready";
    control = button(label, () => setReady("ready"), { class: "primary big", disabled: !idle && !micOff });
  }
  const what = role === "microphone"
    ? "Put this phone where you want to measure, screen up, and keep still during the sweep."
    : "Put this phone where a source would be, at full volume, speaker facing the room.";
  return h("div", { class: "card" },
    h("p", {}, h("strong", {}, `You are a ${role}. `), what),
    micOff && ready ? h("p", { class: "notice" }, "The microphone closed when the page reloaded: tap to open it again.") : null,
    control,
    app.mic.open ? h("p", { class: "small" }, `Listening with: ${app.mic.label}`) : null);
}

function memberRow(app, member) {
  const host = isHost(app.state);
  const name = phoneName(member.device_id, app.state.me);
  const tags = [
    member.device_id === app.state.lobby.host ? "host" : null,
    member.presence === "online" ? null : "offline",
  ].filter(Boolean);
  const role = host
    ? h("select", {
      "aria-label": `Role of ${name}`,
      disabled: !["idle", "ready", "aborted"].includes(app.state.lobby.workflow),
      onchange: (event) => act(app, () => app.connection.command("role.assign", { device_id: member.device_id, role: event.target.value })),
    }, ROLES.map(([value, label]) => h("option", { value, selected: (member.role || "") === value, disabled: value === "" }, label)))
    : h("span", { class: "role" }, member.role || "no role");
  return h("li", { class: `member ${member.presence}` },
    h("span", { class: `dot ${member.presence}`, "aria-hidden": "true" }),
    h("span", { class: "who" }, name, tags.length ? h("small", {}, ` ${tags.join(", ")}`) : null),
    role,
    h("span", { class: member.status === "ready" ? "status ok" : "status" }, member.status === "ready" ? "ready" : "not ready"));
}

// The sweep settings, made once per lobby screen: a render while the host is typing in them or
// has just opened them leaves them as they are.
function sweepSettings(app) {
  // The sweeps together last at most MAX_SWEEPS_S: longer sweeps allow fewer repetitions (once
  // is always offered; the server refuses a sweep too long).
  const fits = (n) => n === 1 || n * (app.sweepSeconds || 10) <= MAX_SWEEPS_S;
  const duration = h("input", { type: "number", min: 2, max: 30, step: 1, value: app.sweepSeconds || 10, name: "duration", onchange: (e) => {
    app.sweepSeconds = Number(e.target.value);
    for (const option of repeats.options) option.disabled = !fits(Number(option.value));
    app.repeats = Math.max(1, Math.min(app.repeats || 1, Math.floor(MAX_SWEEPS_S / (app.sweepSeconds || 10))));
    repeats.value = String(app.repeats);
  } });
  const leadIn = h("input", { type: "number", min: 0.5, max: 10, step: 0.5, value: app.leadIn || 1, name: "lead_in", onchange: (e) => (app.leadIn = Number(e.target.value)) });
  const repeats = h("select", { name: "repeats", onchange: (e) => (app.repeats = Number(e.target.value)) },
    [1, 2, 3, 4].map((n) => h("option", { value: n, selected: (app.repeats || 1) === n, disabled: !fits(n) }, n === 1 ? "once" : `${n} times`)));
  return h("details", { open: app.sweepOpen || false, ontoggle: (e) => (app.sweepOpen = e.target.open) },
    h("summary", {}, "Sweep settings"),
    field("Sweep length (s)", duration, "Longer sweeps give more signal over the noise."),
    field("Silence before the sweep (s)", leadIn, "Room for the phones' clocks to disagree."),
    field("Play the sweep", repeats, "Several times back to back: a sweep a noise disturbed is found and left out, and the rest have less noise."));
}

function hostControls(app, node) {
  const { lobby } = app.state;
  const running = ["measuring", "uploading", "aborted"].includes(lobby.workflow); // not analysis
  const start = () => act(app, () => app.connection.command("measurement.start", {
    sweep: { duration: app.sweepSeconds || 10, lead_in: app.leadIn || 1, repeats: app.repeats || 1 },
  }));
  node.hostCard ||= h("div", { class: "card" });
  node.sweepSettings ||= sweepSettings(app);
  replace(node.hostCard,
    h("h2", {}, "Host"),
    lobby.workflow === "analyzing"
      ? h("p", {}, "Analysing the recordings…")
      : running
      ? button("Stop the measurement", () => act(app, () => app.connection.command("measurement.abort")), { class: "danger big" })
      : button("Start measurement", start, { class: "primary big", disabled: lobby.workflow !== "ready" }),
    h("label", { class: "check" },
      h("input", { type: "checkbox", checked: lobby.locked, onchange: (e) => act(app, () => app.connection.command("lobby.lock", { locked: e.target.checked })) }),
      " Lock the lobby (no one new may join)"),
    node.sweepSettings);
  return node.hostCard;
}

export function update(app, node) {
  const { lobby, members, closed } = app.state;
  if (!lobby) return;
  const list = [...members.values()];
  replace(node,
    app.notice ? h("p", { class: "notice", role: "alert" }, app.notice) : null,
    closed ? h("p", { class: "notice" }, "This lobby has closed.") : null,
    joinCard(app),
    h("p", { class: `workflow ${lobby.workflow}`, role: "status" }, WORKFLOW[lobby.workflow] || lobby.workflow),
    readiness(app),
    h("div", { class: "card" },
      h("h2", {}, `Phones (${list.length}/${lobby.maxMembers})`),
      h("ul", { class: "members" }, list.map((m) => memberRow(app, m)))),
    isHost(app.state) ? hostControls(app, node) : null,
    button("Leave the lobby", () => act(app, () => app.leave()), { class: "quiet" }));
}
