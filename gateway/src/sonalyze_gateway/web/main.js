// The app: one connection, the lobby as its events describe it, and the screen on show.

import { Connection } from "./connection.js";
import { Microphone, Speaker } from "./audio.js";
import { h, replace } from "./ui.js";
import { foldEvent, foldSnapshot, newLobbyState } from "./lobby-state.js";
import { Measuring } from "./measuring.js";
import * as home from "./screens/home.js";
import * as lobby from "./screens/lobby.js";
import * as measure from "./screens/measure.js";
import * as results from "./screens/results.js";
import * as simulate from "./screens/simulate.js";
import * as past from "./screens/history.js";

const SCREENS = { home, lobby, measure, results, simulate, history: past };
const TABS = [
  ["lobby", "Lobby"],
  ["measure", "Measure"],
  ["results", "Results"],
  ["simulate", "Simulate"],
  ["history", "History"],
];
const LOBBY_KEY = "sonalyze.lobby";

const scheme = location.protocol === "https:" ? "wss" : "ws";
const app = {
  connection: new Connection(`${scheme}://${location.host}/v1/ws`),
  state: newLobbyState(),
  mic: new Microphone(),
  speaker: new Speaker(),
  screen: null,
  view: document.getElementById("view"),
  notice: null,
  joinCode: (location.pathname.match(/^\/j\/([^/]+)/) || [])[1] || "",
};
app.measuring = new Measuring(app);

app.show = (name, arg) => {
  const screen = SCREENS[name];
  app.screen = { name, arg, module: screen, node: screen.mount(app, arg) };
  replace(app.view, app.screen.node);
  renderTabs();
  app.view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
};

app.changed = () => {
  if (app.screen?.module.update) app.screen.module.update(app, app.screen.node, app.screen.arg);
  renderTabs();
};

let noticeTimer = null;
app.say = (text) => {
  app.notice = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    app.notice = null;
    app.changed();
  }, 8000);
  app.changed();
};

app.enter = async (command, payload) => {
  const joined = await app.connection.command(command, payload);
  localStorage.setItem(LOBBY_KEY, JSON.stringify({ lobby_id: joined.lobby_id, code: joined.code }));
  app.joinCode = "";
  history.replaceState(null, "", "/"); // a reload rejoins from what is kept, not the link
  replayHistory(joined);
  app.keepAwake();
  return joined;
};

app.leave = async () => {
  try {
    await app.connection.command("lobby.leave");
  } finally {
    localStorage.removeItem(LOBBY_KEY);
    app.connection.unfollow();
    app.state = newLobbyState();
    app.mic.stop();
    history.replaceState(null, "", "/");
    app.show("home");
  }
};

// The lobby's past (earlier measurements and simulations): every event from the first, folded
// into the lists; the snapshot already holds the members, and live events continue after it.
function replayHistory(joined) {
  app.connection.follow(joined.lobby_id, joined.seq);
  app.state.snapshotSeq = joined.seq;
  app.connection.command("resume", { lobby_id: joined.lobby_id, after_seq: 0 }).catch(() => {});
}

let wakeLock = null;
app.keepAwake = async () => {
  if (!("wakeLock" in navigator) || wakeLock || document.visibilityState !== "visible") return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
    wakeLock.addEventListener("release", () => (wakeLock = null));
  } catch {
    wakeLock = null; // refused (battery saver): the screen may dim, nothing else changes
  }
};
document.addEventListener("visibilitychange", () => {
  if (app.state.lobby) app.keepAwake();
});

function renderTabs() {
  const nav = document.getElementById("tabs");
  nav.hidden = !app.state.lobby;
  if (nav.hidden) return;
  replace(
    nav,
    TABS.map(([name, label]) =>
      h("button", {
        type: "button",
        class: app.screen?.name === name ? "tab active" : "tab",
        "aria-current": app.screen?.name === name ? "page" : null,
        onclick: () => app.show(name),
      }, label),
    ),
  );
}

function renderNet(detail) {
  const net = document.getElementById("net");
  net.textContent = detail.connected ? "online" : detail.retry === false ? "stopped" : "reconnecting…";
  net.className = detail.connected ? "net ok" : "net bad";
  net.title = detail.reason || "";
  if (!detail.connected && detail.reason) app.say(`${detail.reason}.${detail.retry === false ? "" : " Reconnecting…"}`);
}

const connection = app.connection;
connection.addEventListener("status", async ({ detail }) => {
  renderNet(detail);
  if (!detail.connected) return;
  if (app.notice && /Reconnecting/.test(app.notice)) app.notice = null;
  app.state.me = connection.deviceId;
  connection.syncClock().then(() => app.changed()).catch(() => {});
  if (!app.state.lobby && !app.entering) {
    const saved = JSON.parse(localStorage.getItem(LOBBY_KEY) || "null");
    const link = app.joinCode.replace(/[-\s]/g, "").toUpperCase();
    if (saved && (!link || link === saved.code)) {
      app.entering = true;
      try {
        await app.enter("lobby.join", { code: saved.code });
      } catch (error) {
        if (error.code === "not_found" || error.code === "forbidden") {
          localStorage.removeItem(LOBBY_KEY); // the lobby closed, or this phone left it
          app.show("home");
        } else {
          app.say(`${error.message}. Trying again…`);
          connection.ws?.close(1000, "rejoin failed; retrying");
        }
      } finally {
        app.entering = false;
      }
    } else if (!app.screen) {
      app.show("home");
    }
  }
  app.measuring.resumeUploads();
});
connection.addEventListener("snapshot", ({ detail }) => {
  foldSnapshot(app.state, detail);
  const mine = app.state.members.get(app.state.me);
  const between = ["idle", "ready"].includes(app.state.lobby.workflow);
  if (mine?.role === "microphone" && mine.status === "ready" && !app.mic.open && between) {
    // Back after a reload: the microphone is closed until a tap opens it again.
    connection.command("role.update", { status: "not_ready" }).catch(() => {});
  }
  if (!app.screen || app.screen.name === "home") app.show("lobby");
  else app.changed();
});
connection.addEventListener("event", ({ detail }) => {
  const { message, live } = detail;
  foldEvent(app.state, message, message.seq > app.state.snapshotSeq);
  if (message.type === "lobby.closed" || (message.type === "participant.left" && message.payload.device_id === app.state.me)) {
    localStorage.removeItem(LOBBY_KEY);
  }
  if (live) app.measuring.onEvent(message);
  app.changed();
});
connection.addEventListener("lost", () => {
  localStorage.removeItem(LOBBY_KEY);
  app.state = newLobbyState();
  app.connection.unfollow();
  app.say("That lobby is gone. Create or join another.");
  app.show("home");
});
connection.addEventListener("identity", () => {
  localStorage.removeItem(LOBBY_KEY);
  app.state = newLobbyState();
  app.say("This phone's identity expired: join the lobby again.");
  app.show("home");
});
connection.addEventListener("notice", ({ detail }) => app.say(detail.text));

window.sonalyze = app; // for the curious, and for the browser tests' timing checks
connection.open();
