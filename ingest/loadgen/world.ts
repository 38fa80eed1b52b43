// The synthetic population behind a dataset: teams, their users (Zipf-like activity) and shared services.
import { type Rng, WeightedTable } from './random.ts';

const TEAM_NAMES = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'wonka'];
const USAGE_SERVICES = ['billing', 'reports', 'search', 'auth', 'dashboard', 'exporter'];
// Infrastructure that logs but is not a product surface; never 'tally', which the service uses for its own logs.
const INFRA_SERVICES = ['gateway', 'scheduler', 'ingest-worker'];

export interface Team {
  id: string;
  name: string;
  services: readonly string[];
  serviceTable: WeightedTable<string>;
}

/** One user acting for one team; a few users act for two teams (consultants, shared accounts). */
export interface Membership {
  userId: string;
  team: Team;
}

export interface World {
  teams: readonly Team[];
  usageServices: readonly string[];
  logServices: readonly string[];
  logServiceTable: WeightedTable<string>;
  memberships: WeightedTable<Membership>;
}

export function buildWorld(rng: Rng): World {
  const teamCount = rng.int(5, 8);
  const usageServices = rng.sample(USAGE_SERVICES, rng.int(4, 6));
  const teams: Team[] = [];
  const memberships: Membership[] = [];
  const weights: number[] = [];
  const allUsers: Array<{ userId: string; team: Team }> = [];

  for (const name of TEAM_NAMES.slice(0, teamCount)) {
    const services = rng.sample(
      usageServices,
      rng.int(Math.min(3, usageServices.length), usageServices.length),
    );
    const team: Team = {
      id: `team-${name}`,
      name,
      services,
      // The first service a team adopted dominates its traffic.
      serviceTable: new WeightedTable(
        services,
        services.map((_, i) => 1 / (i + 1)),
      ),
    };
    teams.push(team);
    const size = rng.int(15, 250);
    const activity = rng.float(0.5, 2);
    let harmonic = 0;
    for (let rank = 1; rank <= size; rank++) harmonic += rank ** -1.1;
    for (let rank = 1; rank <= size; rank++) {
      const m = { userId: `${name}-u${rank}`, team };
      memberships.push(m);
      allUsers.push(m);
      // Team share of traffic scales with size and activity; within a team a few heavy users dominate.
      weights.push((activity * size * rank ** -1.1) / harmonic);
    }
  }

  for (const user of allUsers) {
    if (!rng.chance(0.03)) continue;
    const other = rng.pick(teams.filter((t) => t !== user.team));
    memberships.push({ userId: user.userId, team: other });
    weights.push(0.05);
  }

  const logServices = [...usageServices, ...INFRA_SERVICES];
  return {
    teams,
    usageServices,
    logServices,
    logServiceTable: new WeightedTable(
      logServices,
      logServices.map((s) => (INFRA_SERVICES.includes(s) ? 2 : 1)),
    ),
    memberships: new WeightedTable(memberships, weights),
  };
}
