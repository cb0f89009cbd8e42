-- Runs once, when the postgres service initialises its volume: the Prefect server's database.
CREATE DATABASE prefect;
