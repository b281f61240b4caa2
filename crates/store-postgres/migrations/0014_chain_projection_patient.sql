-- Finding a patient's chains by pseudonymous key (the console's search): an index, so
-- that the answer costs the patient's chains, not the network's.
CREATE INDEX chain_summaries_patient ON chain_summaries (patient_key, coi);
