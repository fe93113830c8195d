/** Building DOM nodes from data: text always goes in as text (names and descriptions are never HTML). */

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

let fieldCount = 0;

/** A labelled input (or textarea/select, by `tag`) with a place for its field error. */
export function field(label, inputProps, { tag = "input", hint = null, options = [] } = {}) {
  const id = `field-${++fieldCount}`;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  // A select's or textarea's value is its chosen option or its text, not an attribute.
  const { value, ...attributes } = inputProps;
  const input = el(
    tag,
    { id, "aria-describedby": [hintId, errorId].filter(Boolean).join(" "), ...attributes, value: tag === "input" ? value : null },
    ...options.map(([option, text]) => el("option", { value: option, selected: option === value }, text)),
  );
  if (tag === "textarea" && value) input.textContent = value;
  return el(
    "div",
    { class: inputProps.type === "checkbox" ? "field checkbox" : "field" },
    el("label", { for: id }, label),
    input,
    hint && el("p", { class: "hint", id: hintId }, hint),
    el("p", { class: "field-error", id: errorId, hidden: true }),
  );
}
