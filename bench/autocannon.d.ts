// The part of autocannon's programmatic API the benchmarks use (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    amount?: number;
    headers?: Record<string, string>;
  }
  interface Result {
    requests: { total: number; average: number };
    non2xx: number;
    errors: number;
    duration: number;
  }
  interface Instance {
    on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
    then: Promise<Result>['then'];
  }
  function autocannon(opts: Options): Instance;
  export default autocannon;
}
