"""Storage: the account connection, the blob module and the local Azurite process."""
