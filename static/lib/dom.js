// DOM helpers. Text from the server only ever reaches the page through text nodes
// (createTextNode / textContent), never as HTML.

/**
 * Creates an element. `attrs`: `class`, `text` (set as textContent), `on*` (event listeners,
 * functions only), anything else through setAttribute. Children: nodes, or strings and numbers
 * (inserted as text nodes); null, undefined and false are skipped; arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key.startsWith('on') || key === 'style' || key === 'href' || key === 'src') {
        throw new Error('refusing to set ' + key + ' from data');
      } else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export const $ = (selector, root) => (root || document).querySelector(selector);

export function show(node, visible) {
  node.hidden = !visible;
}
