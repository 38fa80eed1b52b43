// The export file formats and report types of the contract, the one list the routes, the control store, the
// file names and the export queries share.
export const EXPORT_FORMATS = ['csv', 'parquet'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The reports an export job or a schedule makes. */
export const REPORT_TYPES = ['usage-summary', 'system-events'] as const;
export type ReportType = (typeof REPORT_TYPES)[number];
