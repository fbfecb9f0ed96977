// The lobby as its events describe it: members from the snapshot and the events after it;
// measurements and simulations from every event since the lobby began (their history).

export function newLobbyState() {
  return {
    me: null,
    lobby: null,
    members: new Map(),
    snapshotSeq: 0,
    measurements: new Map(),
    simulations: new Map(),
    closed: null,
  };
}

export function foldSnapshot(state, message) {
  const p = message.payload;
  state.lobby = {
    id: p.lobby_id,
    code: p.code,
    name: p.name,
    host: p.host_device_id,
    workflow: p.workflow_state,
    locked: p.locked,
    maxMembers: p.max_members,
  };
  state.members = new Map(p.members.map((m) => [m.device_id, { ...m }]));
  state.snapshotSeq = message.seq;
  state.closed = null;
}

function member(state, deviceId) {
  if (!state.members.has(deviceId)) {
    state.members.set(deviceId, { device_id: deviceId, role: null, status: "not_ready", presence: "online" });
  }
  return state.members.get(deviceId);
}

function measurement(state, id) {
  if (!state.measurements.has(id)) {
    state.measurements.set(id, { id, recordings: new Map(), done: 0, total: 0, result: null, error: null, state: "scheduled" });
  }
  return state.measurements.get(id);
}

function simulation(state, id) {
  if (!state.simulations.has(id)) {
    state.simulations.set(id, { id, state: "queued", progress: 0, stage: "waiting for a worker", summary: null, error: null });
  }
  return state.simulations.get(id);
}

// Apply one event; `membership` is false for events the snapshot already holds.
export function foldEvent(state, message, membership) {
  const p = message.payload;
  const lobby = state.lobby;
  if (membership && lobby) {
    switch (message.type) {
      case "participant.joined":
        member(state, p.device_id);
        break;
      case "participant.left":
        state.members.delete(p.device_id);
        if (p.host_device_id) lobby.host = p.host_device_id;
        break;
      case "participant.presence":
        member(state, p.device_id).presence = p.presence;
        break;
      case "role.updated":
        Object.assign(member(state, p.device_id), { role: p.role, status: p.status });
        break;
      case "lobby.locked":
        lobby.locked = p.locked;
        break;
      case "workflow.changed":
        lobby.workflow = p.state;
        break;
      case "lobby.closed":
        state.closed = p.reason;
        break;
      default:
    }
  }
  switch (message.type) {
    case "measurement.started":
      Object.assign(measurement(state, p.measurement_id), { started: p, at: message.ts, state: "recording" });
      break;
    case "recording.received":
      measurement(state, p.measurement_id).recordings.set(p.device_id, { state: "complete" });
      break;
    case "recording.invalid":
      measurement(state, p.measurement_id).recordings.set(p.device_id, { state: "invalid", reason: p.message });
      break;
    case "analysis.progress":
      Object.assign(measurement(state, p.measurement_id), { state: "analyzing", done: p.done, total: p.total });
      break;
    case "analysis.result":
      Object.assign(measurement(state, p.measurement_id), {
        state: p.error ? "failed" : "completed",
        result: p.result,
        error: p.error,
        analysisId: p.analysis_id,
      });
      break;
    case "workflow.changed":
      if (p.state === "aborted") {
        for (const m of state.measurements.values()) if (m.state === "recording") m.state = "aborted";
      }
      break;
    case "simulation.queued":
      Object.assign(simulation(state, p.job_id), { at: message.ts, by: p.device_id });
      break;
    case "simulation.progress":
      Object.assign(simulation(state, p.job_id), { state: "running", progress: p.progress, stage: p.stage });
      break;
    case "simulation.result":
      Object.assign(simulation(state, p.job_id), { state: p.state, summary: p.summary, error: p.error, progress: 1 });
      break;
    default:
  }
}

export function isHost(state) {
  return state.lobby && state.lobby.host === state.me;
}

export function myRole(state) {
  return state.members.get(state.me)?.role || null;
}

// The measurement on show: the newest one.
export function latestMeasurement(state) {
  let latest = null;
  for (const m of state.measurements.values()) if (m.started && (!latest || m.at > latest.at)) latest = m;
  return latest;
}
