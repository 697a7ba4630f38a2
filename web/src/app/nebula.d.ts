// The nebula.js chart packages ship no TypeScript declarations: each default export is a
// supernova factory that stardust's `types` configuration takes as is.
declare module '@nebula.js/sn-bar-chart' {
  const sn: unknown;
  export default sn;
}
declare module '@nebula.js/sn-filter-pane' {
  const sn: unknown;
  export default sn;
}
declare module '@nebula.js/sn-kpi' {
  const sn: unknown;
  export default sn;
}
declare module '@nebula.js/sn-table' {
  const sn: unknown;
  export default sn;
}
