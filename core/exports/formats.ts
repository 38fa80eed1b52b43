// The export file formats of the contract, the one list the routes, the control store, the file names and the
// export queries share.
export const EXPORT_FORMATS = ['csv', 'parquet'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
