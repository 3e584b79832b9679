// The twin's sensor: a slowly varying temperature and humidity, derived from the sample number so
// a run is reproducible. On a board, a driver over ECMA-419 IO with the same read() shape takes
// its place; the reporter needs nothing else from it.
export interface Reading {
  readonly [field: string]: number;
}

export class SimulatedSensor {
  #sample = 0;

  read(): Reading {
    const n = this.#sample++;
    return {
      temp: Math.round((21 + 2.5 * Math.sin(n / 12)) * 10) / 10,
      hum: Math.round((48 + 6 * Math.cos(n / 17)) * 10) / 10,
    };
  }
}

Object.freeze(SimulatedSensor.prototype);
