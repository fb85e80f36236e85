#!/usr/bin/env node
// Parse and bind KQL with Kusto.Language (the engine behind the portal's query editor), against a
// declared schema. One process checks every query of a test session: stdin is a JSON list of
// scenarios, stdout a JSON list of results.
//
// Input:  [{"name": str,
//           "tables": [{"name": str, "columns": [[col, type], ...]}],
//           "functions": [{"name": str, "query": str}],   // analysed in order; each is then declared
//                                                         // with the result schema of its body
//           "queries": [{"name": str, "query": str, "tables": [...extra tables for this query]}]}]
// Output: [{"name": str,
//           "functions": [{"name", "diagnostics": [...], "columns": [[col, type], ...]}],
//           "queries":   [{"name", "diagnostics": [...], "columns": [[col, type], ...] | null}]}]
// A diagnostic is {"severity", "code", "message", "start", "length"}.
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

function globalsFor(tables, functions) {
  const db = new K.Symbols.DatabaseSymbol.ctor("workspace", [...tables.map(tableSymbol), ...functions]);
  return K.GlobalState.Default.WithDatabase(db);
}

function runScenario(s) {
  const declared = [];
  const functionResults = [];
  for (const f of s.functions || []) {
    const code = K.KustoCode.ParseAndAnalyze(f.query, globalsFor(s.tables, declared));
    const columns = columnsOf(code);
    functionResults.push({ name: f.name, diagnostics: diagnosticsOf(code), columns });
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
    queryResults.push({ name: q.name, diagnostics: diagnosticsOf(code), columns: columnsOf(code) });
  }
  return { name: s.name, functions: functionResults, queries: queryResults };
}

const input = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(input.map(runScenario)));
