// Small DOM helpers: h() builds elements, so screens read like the page they make.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// Sets parent's children. A child already in parent is left where it is, never detached, so an
// element a screen keeps across renders keeps its focus, typed text and open state.
export function replace(parent, ...children) {
  const next = children.flat(Infinity)
    .filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
  const kept = new Set(next);
  for (const old of [...parent.childNodes]) if (!kept.has(old)) old.remove();
  let at = parent.firstChild;
  for (const child of next) {
    if (child === at) at = at.nextSibling;
    else parent.insertBefore(child, at);
  }
}

export function button(label, onclick, props = {}) {
  return h("button", { type: "button", onclick, ...props }, label);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", {}, hint) : null);
}

export function progress(label, value) {
  return h("progress", { max: 1, value: Math.max(0, Math.min(1, value || 0)), "aria-label": label });
}

// A phone's name on screen: devices have no names, so the first characters of their id.
export function phoneName(deviceId, me) {
  const short = `Phone ${deviceId.slice(0, 4).toUpperCase()}`;
  return deviceId === me ? `${short} (you)` : short;
}

export function formatNumber(value, digits = 2) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : Number(value).toFixed(digits);
}

export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
