#!/usr/bin/env node
// Parse and bind KQL with Kusto.Language (the engine behind the portal's query editor), against a
// declared schema. One process checks every query of a test session: stdin is a JSON list of
// scenarios, stdout a JSON list of results.
//
// Input:  [{"name": str,
//           "tables": [{"name": str, "columns": [[col, type], ...]}],
//           "builtins": [{"name": str, "parameters": "(a:string)", "body": "{ ... }"}],  // workspace functions
//                                                         // Sentinel provides (_GetWatchlist), declared first
//           "functions": [{"name": str, "query": str}],   // analysed in order; each is then declared
//                                                         // with the result schema of its body
//           "queries": [{"name": str, "query": str, "tables": [...extra tables for this query]}]}]
// Output: [{"name": str,
//           "functions": [{"name", "diagnostics": [...], "columns": [[col, type], ...], ...syntax facts}],
//           "queries":   [{"name", "diagnostics": [...], "columns": [[col, type], ...] | null, ...syntax facts}]}]
// A diagnostic is {"severity", "code", "message", "start", "length"}. Syntax facts (from the parsed tree):
// "paths": every maximal x.y["z"] access into a dynamic value, as {"root", "rootKind", "path": [...], "start"}
// (rootKind "column" for a column, "call:<function>" for todynamic(x)/parse_json(x), else "other");
// "operators": the query operator kinds used (ExtendOperator, ...); "calls": the functions called.
"use strict";
const fs = require("fs");
const path = require("path");

const dir = path.dirname(require.resolve("@kusto/language-service-next/package.json"));
require(path.join(dir, "bridge.js"));
require(path.join(dir, "Kusto.Language.Bridge.js"));
const K = Kusto.Language;

function tableSymbol(t) {
  const schema = "(" + t.columns.map(([n, ty]) => `['${n}']:${ty}`).join(", ") + ")";
  return new K.Symbols.TableSymbol.$ctor7(t.name, schema, null);
}

function diagnosticsOf(code) {
  return Bridge.toArray(code.GetDiagnostics()).map((d) => ({
    severity: String(d.Severity),
    code: d.Code,
    message: d.Message,
    start: d.Start,
    length: d.Length,
  }));
}

function columnsOf(code) {
  const type = code.ResultType;
  if (!type || !(type instanceof K.Symbols.TableSymbol)) return null;
  return Bridge.toArray(type.Columns).map((c) => [c.Name, c.Type.Name]);
}

function kindName(node) {
  return System.Enum.toString(K.Syntax.SyntaxKind, node.Kind);
}

function isAccess(node) {
  return node instanceof K.Syntax.PathExpression || node instanceof K.Syntax.ElementExpression;
}

function selectorOf(node) {
  if (node instanceof K.Syntax.PathExpression) return node.Selector.toString().trim().replace(/^\[['"](.*)['"]\]$/, "$1");
  const inner = node.Selector.toString().trim().replace(/^\[(.*)\]$/s, "$1").trim();
  const literal = inner.match(/^['"](.*)['"]$/s);
  return literal ? literal[1] : "[]";
}

function rootOf(node) {
  if (node instanceof K.Syntax.NameReference) {
    const symbol = node.ReferencedSymbol;
    return { root: node.SimpleName, rootKind: symbol instanceof K.Symbols.ColumnSymbol ? "column" : "other" };
  }
  if (node instanceof K.Syntax.FunctionCallExpression) {
    const args = Bridge.toArray(node.ArgumentList.Expressions).map((e) => e.Element);
    const name = node.Name.SimpleName;
    if (args.length === 1 && args[0] instanceof K.Syntax.NameReference) {
      return { root: args[0].SimpleName, rootKind: "call:" + name };
    }
    return { root: name + "()", rootKind: "other" };
  }
  return { root: node.toString().trim(), rootKind: "other" };
}

function syntaxFacts(code) {
  const paths = [];
  const operators = new Set();
  const calls = new Set();
  code.Syntax.WalkElements(function (e) {
    if (e instanceof K.Syntax.QueryOperator) operators.add(kindName(e));
    if (e instanceof K.Syntax.FunctionCallExpression) calls.add(e.Name.SimpleName);
    if (!isAccess(e)) return;
    if (e.Parent && isAccess(e.Parent) && e.Parent.Expression === e) return; // inner part of a longer chain
    const type = e.Expression.ResultType;
    if (!type || type.Name !== "dynamic") return;
    const path = [];
    let node = e;
    while (isAccess(node)) {
      path.unshift(selectorOf(node));
      node = node.Expression;
    }
    paths.push({ ...rootOf(node), path, start: e.TextStart });
  });
  return { paths, operators: [...operators].sort(), calls: [...calls].sort() };
}

function globalsFor(tables, functions) {
  const db = new K.Symbols.DatabaseSymbol.ctor("workspace", [...tables.map(tableSymbol), ...functions]);
  return K.GlobalState.Default.WithDatabase(db);
}

function runScenario(s) {
  const declared = (s.builtins || []).map(
    (b) => new K.Symbols.FunctionSymbol.$ctor16(b.name, b.parameters, b.body, null)
  );
  const functionResults = [];
  for (const f of s.functions || []) {
    const code = K.KustoCode.ParseAndAnalyze(f.query, globalsFor(s.tables, declared));
    const columns = columnsOf(code);
    functionResults.push({ name: f.name, diagnostics: diagnosticsOf(code), columns, ...syntaxFacts(code) });
    if (columns) {
      // Declared by its analysed output schema, so callers bind against exactly what the body returns.
      const ret = tableSymbol({ name: f.name, columns });
      declared.push(new K.Symbols.FunctionSymbol.$ctor5(f.name, ret, []));
    }
  }
  const queryResults = [];
  for (const q of s.queries || []) {
    const tables = [...s.tables, ...(q.tables || [])];
    const code = K.KustoCode.ParseAndAnalyze(q.query, globalsFor(tables, declared));
    queryResults.push({
      name: q.name,
      diagnostics: diagnosticsOf(code),
      columns: columnsOf(code),
      ...syntaxFacts(code),
    });
  }
  return { name: s.name, functions: functionResults, queries: queryResults };
}

const input = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(input.map(runScenario)));
