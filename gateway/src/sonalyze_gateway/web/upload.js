// A microphone's recording, kept in IndexedDB until the server has it whole, and sent in the
// protocol's binary upload frames (28-byte header, CRC32) with a window of frames in flight.
// After a reload or a dropped connection, `measurement.upload` says what is missing, and only
// that is sent; a refused chunk is sent again.

const DB = "sonalyze";
const STORE = "recordings";
export const CHUNK_BYTES = 64 * 1024;
const IN_FLIGHT = 4;
const RESENDS = 3;
const STALL_MS = 15_000;
// Refusals worth sending the chunk again for: damaged, too early, the server busy.
const RETRY_CODES = new Set(["bad_request", "rate_limited", "unavailable", "internal"]);

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "measurement_id" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => reject(tx.error);
  });
}

export const kept = {
  save: (recording) => transact("readwrite", (store) => store.put(recording)),
  all: () => transact("readonly", (store) => store.getAll()),
  remove: (measurementId) => transact("readwrite", (store) => store.delete(measurementId)),
};

// Float samples (-1..1) to 16-bit little-endian PCM.
export function pcm16(samples) {
  const view = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, Math.round(s * 32767), true);
  }
  return view.buffer;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i += 1) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function uuidBytes(uuid) {
  const hex = uuid.replace(/-/g, "");
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export function frame(measurementId, index, data, final) {
  const out = new Uint8Array(28 + data.length);
  const view = new DataView(out.buffer);
  out[0] = 0x53; // S
  out[1] = 0x5a; // Z
  out[2] = 1;
  out[3] = final ? 1 : 0;
  out.set(uuidBytes(measurementId), 4);
  view.setUint32(20, index);
  view.setUint32(24, crc32(data));
  out.set(data, 28);
  return out.buffer;
}

// What to send, from the server's UploadStatus: its missing chunks, and every chunk past the
// highest it has while it has not seen the last one.
function toSend(status, total) {
  const wanted = new Set(status.missing);
  if (status.expected_chunks === null) {
    for (let i = status.received + status.missing.length; i < total; i += 1) wanted.add(i);
  }
  return [...wanted].filter((i) => i < total).sort((a, b) => a - b);
}

// Upload a kept recording until the server has it whole; onProgress(fraction) as chunks are
// acknowledged. Resolves with the final state (complete or invalid, with the error).
export async function upload(connection, recording, onProgress) {
  const bytes = new Uint8Array(recording.data);
  const total = Math.ceil(bytes.length / CHUNK_BYTES);
  const id = recording.measurement_id;
  for (;;) {
    await connected(connection);
    let status;
    try {
      status = await connection.command("measurement.upload", { measurement_id: id, format: recording.format });
    } catch (error) {
      if (error.code === "unavailable" || error.code === "rate_limited") {
        await sleep(error.retryAfterMs || 1000);
        continue;
      }
      throw error;
    }
    if (status.state !== "uploading") return status;
    const queue = toSend(status, total);
    onProgress((total - queue.length) / total);
    if (!queue.length) await sleep(1000); // all sent; the server is still completing it
    const outcome = await sendChunks(connection, id, bytes, total, queue, onProgress);
    if (outcome) return outcome;
  }
}

function sendChunks(connection, id, bytes, total, queue, onProgress) {
  return new Promise((resolve, reject) => {
    const inFlight = new Set();
    const tries = new Map();
    let acked = total - queue.length;
    let watchdog = null;
    const finish = (value, error) => {
      clearTimeout(watchdog);
      connection.removeEventListener("upload", onReply);
      connection.removeEventListener("status", onStatus);
      if (error) reject(error);
      else resolve(value);
    };
    const pump = () => {
      while (inFlight.size < IN_FLIGHT && queue.length) {
        const index = queue.shift();
        const data = bytes.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES);
        if (!connection.sendBinary(frame(id, index, data, index === total - 1))) return finish(null);
        inFlight.add(index);
      }
      if (!inFlight.size && !queue.length) finish(null); // all acknowledged: ask where it stands
    };
    const stalled = () => {
      // No reply for a while (a refusal that named no chunk, a lost frame): ask again.
      clearTimeout(watchdog);
      watchdog = setTimeout(() => finish(null), STALL_MS);
    };
    const onReply = ({ detail }) => {
      stalled();
      if (detail.measurement_id !== id || !inFlight.has(detail.index)) return;
      inFlight.delete(detail.index);
      if (detail.type === "upload.refused") {
        const n = (tries.get(detail.index) || 0) + 1;
        tries.set(detail.index, n);
        if (RETRY_CODES.has(detail.code) && n <= RESENDS) {
          queue.unshift(detail.index); // a damaged or early chunk: send it again
        } else {
          return finish(null, new Error(detail.message));
        }
      } else {
        acked += 1;
        onProgress(acked / total);
        if (detail.state !== "uploading") return finish({ state: detail.state, error: detail.error });
      }
      pump();
    };
    const onStatus = ({ detail }) => {
      if (!detail.connected) finish(null); // resume from the server's status once back
    };
    connection.addEventListener("upload", onReply);
    connection.addEventListener("status", onStatus);
    stalled();
    pump();
  });
}

function connected(connection) {
  if (connection.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const on = ({ detail }) => {
      if (detail.connected) {
        connection.removeEventListener("status", on);
        resolve();
      }
    };
    connection.addEventListener("status", on);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
