// The app view's connection to the engine: enigma.js over the ingress's /app/<appId> WebSocket
// (the browser sends the HttpOnly session cookie with the upgrade, and nginx authenticates it
// like any other request), and a nebula.js `embed` with the four chart types the sheets use.
// Sheets are persistent app objects of qType 'sheet' whose charts are their children (as in
// Qlik Sense): `cells` in the sheet's properties place each child on a 24-column grid.
import enigma from 'enigma.js';
import schema from 'enigma.js/schemas/12.2027.0.json';
import { embed } from '@nebula.js/stardust';
import barchart from '@nebula.js/sn-bar-chart';
import filterpane from '@nebula.js/sn-filter-pane';
import kpi from '@nebula.js/sn-kpi';
import table from '@nebula.js/sn-table';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Doc = any;
export type GenericObject = any;
export type Nebbie = any;

export const CHART_TYPES = [
  { type: 'filterpane', label: 'Filter pane', dims: [1, 10], measures: [0, 0], size: [6, 6] },
  { type: 'barchart', label: 'Bar chart', dims: [1, 2], measures: [1, 1], size: [12, 6] },
  { type: 'kpi', label: 'KPI', dims: [0, 0], measures: [1, 2], size: [6, 3] },
  { type: 'table', label: 'Table', dims: [0, 10], measures: [0, 10], size: [12, 6] },
] as const;
export type ChartType = (typeof CHART_TYPES)[number]['type'];

export const GRID_COLUMNS = 24;

export interface Cell {
  name: string; // the child object's id
  type: string;
  col: number;
  row: number;
  colspan: number;
  rowspan: number;
}

export interface SheetProps {
  qInfo: { qId?: string; qType: 'sheet' };
  qMetaDef: { title: string; description?: string };
  rank?: number;
  columns: number;
  cells: Cell[];
  qChildListDef: { qData: Record<string, string> };
}

export interface Connection {
  session: { close: () => Promise<void>; on: (ev: string, fn: (...a: unknown[]) => void) => void };
  app: Doc;
  nebbie: Nebbie;
}

function wsUrl(appId: string): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}/app/${encodeURIComponent(appId)}`;
}

/** Whether opening may succeed if tried again: the engine closes a new socket with 1013
 * ("try again later") while it cannot ask spaces for access; a missing app (1003, close 4204)
 * or a refusal (4203) will not change. */
function transient(e: any): boolean {
  const code = e?.code ?? e?.original?.code;
  return ![1003, 4203, 4204, 5].includes(code);
}

/** Open the app over QIX (a few tries for transient failures) and create the nebula.js embed. */
export async function connect(appId: string): Promise<Connection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectOnce(appId);
    } catch (e) {
      if (attempt >= 3 || !transient(e)) throw e;
      await new Promise((r) => setTimeout(r, 400 * attempt));
    }
  }
}

async function connectOnce(appId: string): Promise<Connection> {
  const session = enigma.create({ schema, url: wsUrl(appId), createSocket: (url: string) => new WebSocket(url) }) as any;
  const global = await session.open();
  let app: Doc;
  try {
    app = await global.openDoc(appId);
  } catch (e) {
    await session.close().catch(() => undefined);
    throw e;
  }
  const nebbie = embed(app, {
    context: { theme: 'light', language: 'en-US' },
    types: [
      { name: 'barchart', load: () => Promise.resolve(barchart) },
      { name: 'filterpane', load: () => Promise.resolve(filterpane) },
      { name: 'kpi', load: () => Promise.resolve(kpi) },
      { name: 'table', load: () => Promise.resolve(table) },
    ],
  } as any);
  return { session, app, nebbie };
}

export interface ModelField {
  name: string;
  table: string;
  cardinal: number;
  isKey: boolean;
}

/** The data model's fields, table by table (Doc.GetTablesAndKeys). */
export async function modelFields(app: Doc): Promise<ModelField[]> {
  const r = await app.getTablesAndKeys({ qcx: 0, qcy: 0 }, { qcx: 0, qcy: 0 }, 0, false, false);
  const out: ModelField[] = [];
  for (const t of r.qtr ?? []) {
    for (const f of t.qFields ?? []) {
      out.push({ name: f.qName, table: t.qName, cardinal: f.qnTotalDistinctValues ?? 0, isKey: (f.qKeyType ?? 'NOT_KEY') !== 'NOT_KEY' });
    }
  }
  return out;
}

/** A field name as it goes into an expression: [Name] when it needs brackets. */
export function fieldRef(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `[${name.replace(/]/g, ']]')}]`;
}

export function newSheetProps(title: string, description = ''): SheetProps {
  return {
    qInfo: { qType: 'sheet' },
    qMetaDef: { title, description },
    columns: GRID_COLUMNS,
    cells: [],
    qChildListDef: { qData: { title: '/title', visualization: '/visualization' } },
  };
}

/** The first place (top to bottom, left to right) where a w×h cell fits among cells. */
export function placeCell(cells: Cell[], w: number, h: number): { col: number; row: number } {
  const taken = (c: number, r: number) => cells.some((x) => c >= x.col && c < x.col + x.colspan && r >= x.row && r < x.row + x.rowspan);
  for (let row = 0; row < 1000; row++) {
    for (let col = 0; col + w <= GRID_COLUMNS; col++) {
      let free = true;
      for (let r = row; r < row + h && free; r++) for (let c = col; c < col + w && free; c++) if (taken(c, r)) free = false;
      if (free) return { col, row };
    }
  }
  return { col: 0, row: cells.reduce((m, x) => Math.max(m, x.row + x.rowspan), 0) };
}

/** A listbox child of a filter pane for one field (what stardust's filter pane handler makes). */
function listboxProps(field: string) {
  return {
    qInfo: { qType: 'listbox' },
    visualization: 'listbox',
    title: field,
    qListObjectDef: {
      qStateName: '$',
      qShowAlternatives: true,
      qFrequencyMode: 'N',
      qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: 0, qHeight: 0 }],
      qDef: { qFieldDefs: [field], qSortCriterias: [{ qSortByState: 1, qSortByAscii: 1, qSortByNumeric: 1, qSortByLoadOrder: 1 }] },
    },
  };
}

/** How the chart editor names a master measure among its measures: LIB_PREFIX + the id. */
export const LIB_PREFIX = 'lib:';
export function isLibraryMeasure(m: string): boolean {
  return m.startsWith(LIB_PREFIX);
}

/** A master measure (GenericMeasure) as the measure list shows it. */
export interface MasterMeasure {
  id: string;
  label: string;
  expression: string;
  description: string;
  canEdit: boolean;
}

/** Properties of a session object listing the app's master measures (qMeasureListDef). */
export const MEASURE_LIST_PROPS = {
  qInfo: { qType: 'tsr-measurelist' },
  qMeasureListDef: { qType: 'measure', qData: { label: '/qMeasure/qLabel', expression: '/qMeasure/qDef', description: '/qMetaDef/description' } },
};

/* eslint-disable-next-line @typescript-eslint/no-explicit-any */
export function masterMeasures(layout: any): MasterMeasure[] {
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any */
  return (layout?.qMeasureList?.qItems ?? []).map((it: any) => ({
    id: it.qInfo.qId,
    label: it.qData?.label || it.qInfo.qId,
    expression: it.qData?.expression ?? '',
    description: it.qData?.description ?? '',
    canEdit: (it.qMeta?.privileges ?? []).includes('update'),
  }));
}

/** A master dimension (GenericDimension) as the dimension list shows it. */
export interface MasterDimension {
  id: string;
  label: string;
  field: string;
  description: string;
  canEdit: boolean;
}

/** Properties of a session object listing the app's master dimensions (qDimensionListDef). */
export const DIMENSION_LIST_PROPS = {
  qInfo: { qType: 'tsr-dimensionlist' },
  qDimensionListDef: { qType: 'dimension', qData: { label: '/qDim/title', field: '/qDim/qFieldDefs/0', description: '/qMetaDef/description' } },
};

/* eslint-disable-next-line @typescript-eslint/no-explicit-any */
export function masterDimensions(layout: any): MasterDimension[] {
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any */
  return (layout?.qDimensionList?.qItems ?? []).map((it: any) => ({
    id: it.qInfo.qId,
    label: it.qData?.label || it.qInfo.qId,
    field: it.qData?.field ?? '',
    description: it.qData?.description ?? '',
    canEdit: (it.qMeta?.privileges ?? []).includes('update'),
  }));
}

/** Create a master dimension over one field (stored in the app); returns its id. */
export async function createMasterDimension(app: Doc, label: string, field: string, description: string): Promise<string> {
  const d = await app.createDimension({
    qInfo: { qType: 'dimension' },
    qDim: { qGrouping: 'N', qFieldDefs: [field], qFieldLabels: [label], title: label },
    qMetaDef: { title: label, description },
  });
  return d.id as string;
}

/** The engine's word on an expression (Doc.CheckExpression): '' when it is fine. */
export async function checkExpression(app: Doc, expression: string): Promise<string> {
  const r = await app.checkExpression(expression, []);
  return (r?.qErrorMsg ?? '') as string;
}

/** Create a master measure (stored in the app); returns its id. */
export async function createMasterMeasure(app: Doc, label: string, expression: string, description: string): Promise<string> {
  const m = await app.createMeasure({
    qInfo: { qType: 'measure' },
    qMeasure: { qLabel: label, qDef: expression, qGrouping: 'N', qExpressions: [], qActiveExpression: 0 },
    qMetaDef: { title: label, description },
  });
  return m.id as string;
}

/**
 * Add a chart of type to the sheet as a child object: properties from nebula.js for the
 * chosen dimensions (field names) and measures (expressions), placed at the first free cell.
 * A filter pane gets one listbox child per field.
 */
export async function addChart(nebbie: Nebbie, sheet: GenericObject, type: ChartType, title: string, dims: string[], measures: string[]): Promise<string> {
  const spec = CHART_TYPES.find((c) => c.type === type)!;
  let props: any;
  if (type === 'filterpane') {
    props = await nebbie.generateProperties({ type, properties: { title } });
  } else {
    const label = (m: string) => (m.startsWith('=') ? m.slice(1) : m);
    // A master measure (LIB_PREFIX + its id) goes in as qLibraryId: the engine computes its
    // expression and shows its label, and a change of the master measure reaches the chart.
    const fields = [
      // A master dimension (LIB_PREFIX + its id) goes in as qLibraryId as well.
      ...dims.map((d) => (isLibraryMeasure(d) ? { qLibraryId: d.slice(LIB_PREFIX.length), type: 'dimension' } : d)),
      ...measures.map((m) => (isLibraryMeasure(m) ? { qLibraryId: m.slice(LIB_PREFIX.length), type: 'measure' } : { qDef: { qDef: `=${label(m)}`, qLabel: label(m) } })),
    ];
    props = await nebbie.generateProperties({ type, fields, properties: { title } });
  }
  if (!props) throw new Error(`nebula.js could not make a ${type}`);
  props.qInfo = { qType: type };
  props.visualization = type;
  props.title = title;
  if (type === 'barchart') props.dataPoint = { ...(props.dataPoint ?? {}), showLabels: true };
  const child = await sheet.createChild(props);
  if (type === 'filterpane') {
    const own = await child.getProperties();
    await child.setFullPropertyTree({ qProperty: own, qChildren: dims.map((f) => ({ qProperty: listboxProps(f), qChildren: [] })) });
  }
  const sp = (await sheet.getProperties()) as SheetProps;
  const cells = sp.cells ?? [];
  const [w, h] = spec.size;
  const at = placeCell(cells, w, h);
  sp.cells = [...cells, { name: child.id, type, col: at.col, row: at.row, colspan: w, rowspan: h }];
  await sheet.setProperties(sp);
  return child.id as string;
}

/** Remove a chart from the sheet (the child and its cell). */
export async function removeChart(sheet: GenericObject, id: string): Promise<void> {
  const sp = (await sheet.getProperties()) as SheetProps;
  sp.cells = (sp.cells ?? []).filter((c) => c.name !== id);
  await sheet.destroyChild(id, sp);
}
