"""The bundle contract: run ids, manifests and the tables a bundle may carry."""
