// Small DOM and formatting helpers for the console. No framework: the page is a few views that
// re-render whole regions from API answers, which the DOM API does well enough.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Sets attributes (`false`/`null`/`undefined` skip one), event listeners (`on…`) and children. */
function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    // Text always goes in as a text node: task texts and errors are data, never markup.
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: `h('td', { class: 'num' }, 42)`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same call shape as `h`. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** `document.getElementById` that fails loudly when the page and the script disagree. */
export function byId(id) {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`#${id} is missing from the page`);
  return element;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatCount(value) {
  return typeof value === 'number' ? integer.format(value) : '–';
}

/** Seconds as the two largest units: `45 s`, `3 min 05 s`, `2 h 07 min`, `3 d 04 h`. */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const total = Math.max(0, Math.floor(seconds));
  // The second unit is left out when it is zero: a threshold of 600 s reads `10 min`.
  const two = (big, bigUnit, small, smallUnit) =>
    small === 0 ? `${big} ${bigUnit}` : `${big} ${bigUnit} ${String(small).padStart(2, '0')} ${smallUnit}`;
  if (total < 60) return `${total} s`;
  if (total < 3600) return two(Math.floor(total / 60), 'min', total % 60, 's');
  if (total < 86_400) return two(Math.floor(total / 3600), 'h', Math.floor((total % 3600) / 60), 'min');
  return two(Math.floor(total / 86_400), 'd', Math.floor((total % 86_400) / 3600), 'h');
}

/** An ISO time in the viewer's zone, to the second: `2026-12-06 18:20:05`. */
export function formatTime(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A `<time>` element showing the local time, with the exact ISO value as its machine form. */
export function timeElement(iso) {
  return iso ? h('time', { datetime: iso, title: iso }, formatTime(iso)) : '–';
}
