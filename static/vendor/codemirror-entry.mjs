// Entry for static/vendor/codemirror-6.min.js (rebuild steps: codemirror-6.LICENSE).
// Bundled by esbuild into one IIFE whose only global is window.scfEditor:
//   scfEditor.attach(textarea, language)    -> EditorView (also textarea.scfEditorView)
//   scfEditor.setValue(textarea, text)      -> replace the document (no input event)
//   scfEditor.setLanguage(textarea, language)
// The textarea stays the form field: it is hidden, and its value follows every edit.
// Built with style-mod patched (one line, see codemirror-6.LICENSE) so that all
// editor CSS goes into a constructed style sheet instead of a <style> element,
// which the console's Content-Security-Policy (style-src 'self') would block.
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, highlightSpecialChars,
} from "@codemirror/view";
import { EditorState, Compartment } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  syntaxHighlighting, HighlightStyle, bracketMatching, indentOnInput, indentUnit,
} from "@codemirror/language";
import { search, searchKeymap } from "@codemirror/search";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
// The bare Language objects (not python()/javascript()): they carry the parser,
// indentation rules and bracket/indent-on-input data, but none of the
// completion sources, which this editor does not use.
import { pythonLanguage } from "@codemirror/lang-python";
import { javascriptLanguage } from "@codemirror/lang-javascript";
import { tags as t } from "@lezer/highlight";
// CodeMirror's own CSS-in-JS module (a dependency of @codemirror/view), used
// directly for the palette because EditorView.theme cannot put a rule for the
// editor element itself inside an @media block.
import { StyleModule } from "style-mod";

// Palette. The page may set --cm-<name> (kebab-case, e.g. --cm-keyword,
// --cm-active-line; on :root or any ancestor) to restyle; the editor also
// takes --surface, --text, --border, --focus and --mono from the page. Else
// these defaults apply, switched by prefers-color-scheme. Every token colour
// (and fg) is >= 4.5:1 (WCAG AA) against bg, and also against the active-line,
// gutter, selection, bracket and search-match backgrounds of its scheme,
// with the (translucent, so a selection shows through) active line on top.
const LIGHT = {
  bg: "#ffffff", fg: "#1d2129", border: "#c9ced6", focus: "#0052d9",
  gutterBg: "#f6f8fa", gutterFg: "#57606a", activeLine: "rgba(0, 82, 217, 0.07)", panelBg: "#f6f8fa",
  selection: "#d5e5fb", selectionBlur: "#e3e8ee", bracket: "#cdebe5",
  match: "#fff1a8", matchLine: "#d4a72c", matchSel: "#fde4a0", matchSelLine: "#9a6700",
  keyword: "#b31d28", string: "#0a3069", comment: "#4f5761", number: "#0550ae",
  function: "#6639ba", type: "#953800", property: "#0550ae", regexp: "#116329",
  meta: "#953800", invalid: "#82071e",
};
const DARK = {
  bg: "#1b1f24", fg: "#e6e8ec", border: "#3d444d", focus: "#74a6ff",
  gutterBg: "#1b1f24", gutterFg: "#9198a1", activeLine: "rgba(120, 160, 220, 0.06)", panelBg: "#22272e",
  selection: "#1a3352", selectionBlur: "#2a3038", bracket: "#163d38",
  match: "#3d3414", matchLine: "#8a6d1c", matchSel: "#4b3a10", matchSelLine: "#e3b341",
  keyword: "#ff9b94", string: "#a5d6ff", comment: "#aeb5bf", number: "#79c0ff",
  function: "#d2a8ff", type: "#ffa657", property: "#79c0ff", regexp: "#7ee787",
  meta: "#ffa657", invalid: "#ffa198",
};
const kebab = (k) => k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
const defaults = (p) => Object.fromEntries(Object.entries(p).map(([k, v]) => ["--scfcm-" + kebab(k), v]));
// Public override first (--cm-x), then the page's own palette where it has one, then ours.
const v = (name, pageVar) =>
  pageVar ? `var(--cm-${name}, var(${pageVar}, var(--scfcm-${name})))` : `var(--cm-${name}, var(--scfcm-${name}))`;

// Default palette as custom properties on the editor element, switched by
// prefers-color-scheme. Mounted by the view with its other style modules
// (a constructed style sheet, see codemirror-6.LICENSE: no <style> element,
// so the page's "style-src 'self'" policy does not block it).
const palette = new StyleModule({
  // color-scheme: native parts (scrollbars, checkboxes) match the palette.
  ".cm-editor.scf-cm": { colorScheme: "light", ...defaults(LIGHT) },
  "@media (prefers-color-scheme: dark)": { ".cm-editor.scf-cm": { colorScheme: "dark", ...defaults(DARK) } },
});

// Structure and chrome, all colours through the variables above.
const theme = EditorView.theme({
  "&": {
    color: v("fg", "--text"),
    backgroundColor: v("bg", "--surface"),
    border: "1px solid " + v("border", "--border"),
    borderRadius: "4px",
    fontSize: "13px",
    maxHeight: "70vh", // the editor scrolls itself beyond this
  },
  "&.cm-focused": { outline: "2px solid " + v("focus", "--focus"), outlineOffset: "1px" },
  ".cm-scroller": {
    fontFamily: "var(--mono, ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace)",
    lineHeight: "1.5",
    overflow: "auto",
  },
  ".cm-content, .cm-gutter": { minHeight: "18em" },
  ".cm-content": { caretColor: v("fg", "--text") },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: v("fg", "--text") },
  ".cm-gutters": {
    backgroundColor: v("gutter-bg"), color: v("gutter-fg"),
    borderRight: "1px solid " + v("border", "--border"),
    borderTopLeftRadius: "3px", borderBottomLeftRadius: "3px",
  },
  ".cm-activeLine": { backgroundColor: v("active-line") },
  ".cm-activeLineGutter": { backgroundColor: v("active-line"), color: v("fg", "--text") },
  ".cm-selectionBackground": { background: v("selection-blur") },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground": { background: v("selection") },
  "&.cm-focused .cm-matchingBracket": { backgroundColor: v("bracket"), outline: "1px solid " + v("comment") },
  "&.cm-focused .cm-nonmatchingBracket": { backgroundColor: "transparent", color: v("invalid"), textDecoration: "underline wavy" },
  ".cm-searchMatch": { backgroundColor: v("match"), outline: "1px solid " + v("match-line") },
  ".cm-searchMatch.cm-searchMatch-selected": { backgroundColor: v("match-sel"), outline: "1px solid " + v("match-sel-line") },
  ".cm-specialChar": { color: v("invalid") },
  // Search panel: readable sizes and colours in both schemes. The selectors
  // are specific enough to win over page-wide input rules (e.g. width: 100%).
  ".cm-panels": { backgroundColor: v("panel-bg"), color: v("fg", "--text") },
  ".cm-panels.cm-panels-top": { borderBottom: "1px solid " + v("border", "--border") },
  ".cm-panels.cm-panels-bottom": { borderTop: "1px solid " + v("border", "--border") },
  ".cm-panel.cm-search": { fontFamily: "inherit" },
  ".cm-panel.cm-search label": { fontSize: "12px" },
  ".cm-panel.cm-search .cm-textfield, .cm-panel.cm-search .cm-button": {
    fontFamily: "inherit", fontSize: "12px", lineHeight: "1.4", width: "auto", minWidth: "0", minHeight: "0", height: "auto",
    padding: "2px 8px", color: v("fg", "--text"), backgroundColor: v("bg", "--surface"),
    backgroundImage: "none", border: "1px solid " + v("border", "--border"), borderRadius: "3px",
  },
  ".cm-panel.cm-search .cm-textfield": { width: "14em" },
  ".cm-panel.cm-search .cm-button": { cursor: "pointer" },
  ".cm-panel.cm-search .cm-button:hover": { borderColor: v("gutter-fg") },
  ".cm-panel.cm-search input[type=checkbox]": {
    width: "auto", minHeight: "0", height: "auto", padding: "0", margin: "0 .3em 0 0", verticalAlign: "middle",
  },
  ".cm-panel.cm-search .cm-textfield:focus, .cm-panel.cm-search .cm-button:focus-visible, .cm-panel.cm-search input[type=checkbox]:focus-visible":
    { outline: "2px solid " + v("focus", "--focus"), outlineOffset: "0" },
  ".cm-panel.cm-search [name=close]": { color: v("fg", "--text"), fontSize: "16px", minHeight: "0", padding: "0 4px", cursor: "pointer" },
});

// Token colours through CSS variables, so one HighlightStyle serves both schemes.
const tok = (name) => `var(--cm-${name}, var(--scfcm-${name}))`;
const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.operatorKeyword, t.definitionKeyword, t.moduleKeyword, t.modifier], color: tok("keyword") },
  { tag: [t.string, t.docString, t.character, t.special(t.string)], color: tok("string") },
  { tag: [t.regexp, t.escape], color: tok("regexp") },
  { tag: t.comment, color: tok("comment"), fontStyle: "italic" },
  { tag: [t.number, t.bool, t.null, t.atom, t.self, t.constant(t.variableName)], color: tok("number") },
  { tag: [t.function(t.variableName), t.function(t.definition(t.variableName)), t.function(t.propertyName)], color: tok("function") },
  { tag: [t.className, t.typeName, t.definition(t.className), t.namespace], color: tok("type") },
  { tag: [t.propertyName, t.definition(t.propertyName), t.special(t.propertyName)], color: tok("property") },
  { tag: [t.meta, t.annotation, t.labelName], color: tok("meta") },
  { tag: t.invalid, color: tok("invalid") },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
]);

function languageExtensions(language) {
  const name = String(language || "").toLowerCase();
  // "python" / "javascript"; runtime names such as "python3.9" or "nodejs16" also match.
  if (/^python/.test(name)) return [pythonLanguage, indentUnit.of("    ")];
  if (/^(javascript|js$|node)/.test(name)) return [javascriptLanguage, indentUnit.of("  ")];
  return [indentUnit.of("    ")]; // plain text: no parser, no highlighting
}

// Per textarea: its view, the compartment holding the language, and that language.
const editors = new WeakMap();

function createState(textarea, doc) {
  const ed = editors.get(textarea);
  const contentAttrs = { "aria-label": accessibleName(textarea) };
  for (const a of ["aria-describedby", "aria-invalid"]) {
    if (textarea.hasAttribute(a)) contentAttrs[a] = textarea.getAttribute(a);
  }
  return EditorState.create({
    doc,
    extensions: [
      lineNumbers(),
      highlightActiveLine(),
      highlightActiveLineGutter(),
      highlightSpecialChars(), // makes stray control / zero-width characters visible
      drawSelection(),         // selection and cursor drawn by the editor, so they follow the theme
      history(),               // undo / redo
      indentOnInput(),         // re-indent on e.g. "else:" or "}" per the language's rules
      bracketMatching(),
      closeBrackets(),
      search({ top: true }),   // Ctrl/Cmd-F panel, at the top where it is seen
      syntaxHighlighting(highlight),
      theme,
      EditorView.styleModule.of(palette),
      ed.language.of(languageExtensions(ed.languageName)), // parser + indent unit
      EditorView.editorAttributes.of({ class: "scf-cm" }),
      EditorView.contentAttributes.of(contentAttrs),
      EditorState.readOnly.of(textarea.readOnly || textarea.disabled),
      EditorView.editable.of(!textarea.disabled),
      // Tab / Shift-Tab indent and dedent; Escape then Tab still moves focus
      // on (CodeMirror's tab-focus escape hatch), so the keyboard is not trapped.
      keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, indentWithTab]),
      // The textarea is what the form posts: keep it equal to the document and
      // tell listeners on it, as typing in the textarea itself would.
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        textarea.value = update.state.doc.toString();
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      }),
    ],
  });
}

function labelOf(textarea) {
  return textarea.id ? textarea.ownerDocument.querySelector(`label[for="${CSS.escape(textarea.id)}"]`) : null;
}

function accessibleName(textarea) {
  const label = labelOf(textarea);
  const text = (label && label.textContent.replace(/\s+/g, " ").trim()) || textarea.getAttribute("aria-label");
  return text || "Code";
}

function attach(textarea, language) {
  const existing = editors.get(textarea);
  if (existing) return existing.view;
  const ed = { language: new Compartment(), languageName: language, view: null };
  editors.set(textarea, ed);
  const view = (ed.view = new EditorView({ state: createState(textarea, textarea.value) }));
  textarea.scfEditorView = view;
  textarea.style.display = "none";
  textarea.after(view.dom);
  // The label still points at the hidden textarea: send its clicks to the editor.
  const label = labelOf(textarea);
  if (label) label.addEventListener("click", (e) => { e.preventDefault(); view.focus(); });
  // A form reset restores the textarea's default text; show it.
  if (textarea.form) textarea.form.addEventListener("reset", () => setTimeout(() => setValue(textarea, textarea.value)));
  return view;
}

// Replace the whole document, e.g. with another file or a template skeleton.
// A fresh editor state (undo does not step back into the previous content) in
// the same view; like assigning textarea.value, it fires no input event.
function setValue(textarea, text) {
  text = text == null ? "" : String(text);
  textarea.value = text;
  const ed = editors.get(textarea);
  if (ed && ed.view.state.doc.toString() !== text) ed.view.setState(createState(textarea, text));
}

// Switch highlighting and indent unit, e.g. when the runtime changes.
function setLanguage(textarea, language) {
  const ed = editors.get(textarea);
  if (!ed) return;
  ed.languageName = language;
  ed.view.dispatch({ effects: ed.language.reconfigure(languageExtensions(language)) });
}

window.scfEditor = { attach, setValue, setLanguage };
