use sea_orm_migration::prelude::*;

/// What a signature signed: a snapshot of the record's signed fields (listed per record
/// type and step), so that a later change to one of those fields, and only such a change,
/// shows the signature as no longer matching. Signatures written before have none and
/// read as not checkable: their hash covers the whole record as it was shown then, which
/// cannot be recomputed from the record's fields.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Signatures::Table)
                    .add_column(ColumnDef::new(Signatures::SignedContent).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Signatures::Table)
                    .drop_column(Signatures::SignedContent)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Signatures {
    Table,
    SignedContent,
}
